"""Checks that a saas, app or schedule request cannot write: each mirrors one route's own rules."""

from __future__ import annotations

import json
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.domains import DOMAIN_RULES
from schemas.saas import AppConfig, AppUpdate
from schemas.schedules import ScheduleCreate, ScheduleUpdate
from tests.bad_input.app_keys import env_suffix, well_formed
from tests.bad_input.request import Target

SYNC_MODES = ("full", "incremental")
UNSET_PREFIX = "FUZZ_UNSET_"  # secret variables the generators name and nobody sets
SECRET_PREFIXES = ("STRIPE_API_KEY_", "STRIPE_WEBHOOK_SECRET_")
SURE_DEPTH = 100  # nesting the api surely refuses to store (its limit is 64)
NOT_NULL_ON_PATCH = ("name", "params", "enabled", "timezone", "mode")


def set_secret_vars(t: Target) -> tuple[str, str]:
    """The configured app's secret variables, which the stack sets."""
    suffix = env_suffix(t.app_key)
    return (f"{SECRET_PREFIXES[0]}{suffix}", f"{SECRET_PREFIXES[1]}{suffix}")


def configured_app(t: Target) -> dict[str, Any]:
    """The configured app as its apps file gives it."""
    return {
        "app_key": t.app_key,
        "connector": "stripe",
        "api_base": t.app_api_base,
        "resources": list(t.app_resources),
    }


def sync_refused(body: bytes, t: Target) -> bool:
    """True when POST /sync with the admin key surely starts nothing: not supasaasy's
    body, an app that does not exist, or a field it refuses."""
    if len(body) > t.saas_max_body:
        return True
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return True
    if not isinstance(data, dict) or data.get("app_key") != t.app_key:
        return True  # 400, or 404: the configured app is the only one
    if data.get("mode", "incremental") not in SYNC_MODES:
        return True
    types = data.get("resource_types")
    if types is not None and (
        not isinstance(types, list)
        or not all(isinstance(x, str) and x in t.app_resources for x in types)
    ):
        return True
    return not isinstance(data.get("immediate", False), bool)


def surely_unstorable(value: Any) -> bool:
    """A NUL character in a string or key, or nesting far past the api's limit."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > SURE_DEPTH:
            return True
        if isinstance(item, str) and "\x00" in item:
            return True
        if isinstance(item, dict):
            if any("\x00" in k for k in item):
                return True
            stack += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, depth + 1) for v in item]
    return False


def event_refused(body: bytes, t: Target) -> bool:
    """True when a webhook's body is no event the api applies, whatever its signature:
    over 1 MiB, not JSON, not an object with a string id, or not storable."""
    if len(body) > t.saas_max_body:
        return True
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return True
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        return True
    return surely_unstorable(event)


def fastapi_json(body: bytes) -> tuple[bool, Any]:
    """(parsed, value) as FastAPI reads a JSON body (Python's json; nesting it cannot
    parse is a 400)."""
    if not body.strip():
        return False, None
    try:
        return True, json.loads(body)
    except (ValueError, RecursionError):
        return False, None


def schedule_create_refused(body: bytes) -> bool:
    """True when POST /v1/schedules surely creates nothing: not the schema, or a domain
    a schedule cannot fire, or a mode that domain lacks."""
    parsed, data = fastapi_json(body)
    if not parsed:
        return True
    try:
        created = ScheduleCreate.model_validate(data)
    except ValidationError:
        return True
    rules = DOMAIN_RULES.get(created.domain)
    if rules is None or not rules.pull:
        return True
    return created.mode is not None and created.mode not in rules.modes


def schedule_update_refused(body: bytes, domain: str) -> bool:
    """True when PATCH /v1/schedules/{id} of an existing schedule of ``domain`` surely
    changes nothing (a body that is not the schema, a null it refuses, a mode it lacks)."""
    parsed, data = fastapi_json(body)
    if not parsed or not isinstance(data, dict):
        return True
    try:
        update = ScheduleUpdate.model_validate(data)
    except ValidationError:
        return True
    if any(key in data and data[key] is None for key in NOT_NULL_ON_PATCH):
        return True
    rules = DOMAIN_RULES.get(domain)
    return rules is not None and update.mode is not None and update.mode not in rules.modes


def surely_unset(name: str, t: Target) -> bool:
    """Whether no api process can have the variable ``name`` set."""
    if "\x00" in name or "=" in name or not name.isprintable():
        return True
    if name.startswith(UNSET_PREFIX):
        return True
    return name.startswith(SECRET_PREFIXES) and name not in set_secret_vars(t)


def app_refused(config: AppConfig, t: Target) -> bool:
    values = config.resolved()
    return any(surely_unset(values[k], t) for k in ("api_key_env", "webhook_secret_env"))


def app_create_refused(body: bytes, t: Target) -> bool:
    """True when POST /v1/apps surely creates nothing: an app_key outside seed 001's
    pattern, not the schema, the configured app (409), or a secret variable not set."""
    parsed, data = fastapi_json(body)
    if not parsed or not isinstance(data, dict) or not well_formed(data.get("app_key")):
        return True
    try:
        config = AppConfig.model_validate(data)
    except ValidationError:
        return True
    return config.app_key == t.app_key or app_refused(config, t)


def app_update_refused(body: bytes, t: Target) -> bool:
    """True when PATCH /v1/apps/{the configured app} surely changes nothing."""
    parsed, data = fastapi_json(body)
    if not parsed or not isinstance(data, dict):
        return True
    try:
        AppUpdate.model_validate(data)
        config = AppConfig.model_validate({**configured_app(t), **data})
    except ValidationError:
        return True
    return app_refused(config, t)
