"""Per-domain checks at the edge for ``POST /v1/syncs``: the payload a domain accepts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from api.problems import Problem, validation_problem
from schemas.dictionary import DictionaryPush
from schemas.domains import DOMAIN_RULES
from schemas.events import SyncMode
from schemas.git import ALL_RELEASES
from schemas.jobs import SyncCreate

# Returns the scope the request runs under; raises Problem(422) for a payload the domain refuses.
EdgeCheck = Callable[[SyncCreate], str]


def _dictionary(body: SyncCreate) -> str:
    if not isinstance(body.payload, dict):
        raise Problem(422, "payload: the dictionary domain needs a dictionary batch object")
    data: dict[str, Any] = {"requestId": body.request_id or "v1", **body.payload}
    try:
        push = DictionaryPush.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc.errors(include_input=False), prefix=("payload",)) from None
    return body.scope or push.lang


def _models(body: SyncCreate) -> str:
    if body.payload is not None:
        raise Problem(422, "payload: the models domain pulls its sources and takes no payload")
    return body.scope or "default"


def _git(body: SyncCreate) -> str:
    """Every active release (scope ``all``), or ``params.release_ids`` under the scope given
    (the trigger route uses the releases' branch, so one branch syncs at a time)."""
    if body.payload is not None:
        raise Problem(422, "payload: the git domain pulls its repository and takes no payload")
    unknown = set(body.params) - {"release_ids"}
    if unknown:
        raise Problem(422, f"params: the git domain takes release_ids only, not {sorted(unknown)}")
    ids = body.params.get("release_ids")
    if ids is not None and (
        not isinstance(ids, list)
        or not 0 < len(ids) <= 100
        or not all(type(i) is int and 0 < i < 2**31 for i in ids)
    ):
        raise Problem(422, "params.release_ids: a list of 1 to 100 release ids (integers)")
    if ids is None and body.scope not in (None, ALL_RELEASES):
        raise Problem(
            422, f"scope: without params.release_ids the git domain syncs '{ALL_RELEASES}'"
        )
    return body.scope or ALL_RELEASES


EDGE_CHECKS: dict[str, EdgeCheck] = {"dictionary": _dictionary, "models": _models, "git": _git}
# Domains where a second trigger is refused (409) while one job runs, instead of queueing.
EXCLUSIVE_DOMAINS = frozenset(name for name, rules in DOMAIN_RULES.items() if rules.exclusive)


def scope_for(body: SyncCreate) -> str:
    """Validate ``body`` for its domain; 422 for an unknown domain or a refused payload."""
    check = EDGE_CHECKS.get(body.domain)
    if check is None:
        known = ", ".join(sorted(EDGE_CHECKS))
        raise Problem(422, f"domain: unknown domain '{body.domain}' (known: {known})")
    return check(body)


def mode_for(domain: str, mode: SyncMode | None) -> SyncMode:
    """The mode to run (the domain's default when none is given); 422 for one it lacks."""
    rules = DOMAIN_RULES[domain]
    if mode is not None and mode not in rules.modes:
        raise Problem(422, f"mode: the {domain} domain syncs {' or '.join(rules.modes)} only")
    return mode or rules.default_mode
