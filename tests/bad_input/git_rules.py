"""Seed 002's git routes as the suite sees them: the PIN, what each request must get, and
checks that a body cannot write (each mirrors the route's own rules)."""

from __future__ import annotations

import email.message
import functools
import json
import uuid
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote_to_bytes

from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from schemas.git import ConfigureBody, ReleaseIn, ReleasePatch
from tests.bad_input.credentials import ADMIN_BAD, ADMIN_OK, admin_headers
from tests.bad_input.request import BadRequest, Target
from tests.bad_input.saas_answers import routed_path
from tests.raw_http import Headers

INT4_MAX = 2**31 - 1
# What an authenticated request gets, by what is wrong with it; a request without valid
# credentials gets 401, or 403 when it carries an X-Admin-PIN header (a wrong PIN).
ANSWERS: dict[str, tuple[int, ...]] = {
    "fine": (200,),
    "oversize body": (413,),
    "unreadable body": (400,),  # FastAPI: not UTF-8, or nested past the parser
    "invalid JSON": (422,),
    "not the schema": (422,),  # body, path or query (FastAPI validates them together)
    "refused change": (422,),  # ReleasePatch.changes(): a null name or active
    "no configuration": (422,),  # configure: neither enabled nor interval_hours
    "unknown release": (404,),
    "unknown job": (404,),
    "no branch": (400,),  # the release to trigger has no git_branch
    "nothing to sync": (400,),  # trigger-all: no active release has a branch
    "bad Last-Event-ID": (400,),
    "duplicate name": (409,),
    "no route": (404,),  # an encoded slash: the path is another (unknown) one
}
Check = Callable[[Any], str]  # a parsed body's verdict: one of ANSWERS, or '' (might write)
RELEASE_ID = TypeAdapter(int)
JOB_ID = TypeAdapter(uuid.UUID)
LIMIT_RULES: dict[str, dict[str, TypeAdapter[Any]]] = {
    "history": {"limit": TypeAdapter(Annotated[int, Field(ge=1, le=2**31 - 1)])},
    "tests": {
        "file": TypeAdapter(
            Annotated[str, Field(min_length=1, max_length=1024, pattern="^[^\x00]+$")]
        ),
        "limit": TypeAdapter(Annotated[int, Field(ge=1, le=100_000)]),
        "offset": TypeAdapter(Annotated[int, Field(ge=0, le=10_000_000)]),
    },
}
# Branch names the api must refuse: (label, JSON text). Each is one `git check-ref-format
# --branch` refuses (git 2.39), longer than the api's 255 characters, or no string.
BRANCHES: dict[str, str] = {
    "branch -x": '"-x"',
    "branch -": '"-"',
    "branch a..b": '"a..b"',
    "branch refs/../x": '"refs/../x"',
    "branch ..": '".."',
    "branch HEAD": '"HEAD"',
    "branch @{-1}": '"@{-1}"',
    "branch a@{b": '"a@{b"',
    "branch with U+0001": '"a\\u0001b"',
    "branch with a NUL": '"a\\u0000b"',
    "branch with DEL": '"a\\u007fb"',
    "branch with a tab": '"a\\tb"',
    "branch with a trailing newline": '"main\\n"',
    "branch 300 characters": json.dumps("b" * 300),
    "branch 256 characters": json.dumps("b" * 256),
    "branch x.lock": '"x.lock"',
    "branch a/b.lock/c": '"a/b.lock/c"',
    "branch a/.hidden": '"a/.hidden"',
    "branch .a": '".a"',
    "branch ending with a dot": '"a."',
    "branch with a space": '"a b"',
    "branch with ~": '"a~1"',
    "branch with ^": '"a^b"',
    "branch with a colon": '"a:b"',
    "branch with ?": '"a?b"',
    "branch with *": '"a*b"',
    "branch with [": '"a[b"',
    "branch with a backslash": '"a\\\\b"',
    "branch empty": '""',
    "branch /a": '"/a"',
    "branch a/": '"a/"',
    "branch a//b": '"a//b"',
    "branch a lone surrogate": '"\\udc00"',
    "branch a number": "5",
    "branch a list": '["main"]',
    "branch true": "true",
}
GIT_REFUSES = frozenset(v for v in map(json.loads, BRANCHES.values()) if isinstance(v, str))
DEEP = 400  # nesting from which the api's JSON parser may run out of recursion (400)

# Credentials as seed 002's routes read them: the PIN header, or the admin Bearer key.
PIN_OK: dict[str, Headers] = {"PIN header name in capitals": [(b"X-ADMIN-PIN", b"{pin}")]}
PIN_BAD: dict[str, Headers] = {
    "empty PIN": [(b"x-admin-pin", b"")],
    "PIN in capitals": [(b"x-admin-pin", b"{PIN}")],
    "PIN without its last character": [(b"x-admin-pin", b"{pin-1}")],
    "PIN twice, comma-joined": [(b"x-admin-pin", b"{pin}, {pin}")],
    "two PIN headers, wrong first": [(b"x-admin-pin", b"0000"), (b"x-admin-pin", b"{pin}")],
    "the admin key as the PIN": [(b"x-admin-pin", b"{key}")],
    "PIN percent-encoded": [(b"x-admin-pin", b"{pin%}")],
    "PIN 8 KB": [(b"x-admin-pin", b"9" * 8192)],
    "PIN with a raw 0xB2": [(b"x-admin-pin", b"{pin}\xb2")],
    "PIN as a Bearer token": [(b"authorization", b"Bearer {pin}")],
    "PIN in a cookie": [(b"cookie", b"x-admin-pin={pin}")],
    "PIN header with underscores": [(b"x_admin_pin", b"{pin}")],
    "PIN header misspelled": [(b"x-admin-pn", b"{pin}")],
    "PIN header with a trailing dash": [(b"x-admin-pin-", b"{pin}")],
}


def pin_headers(t: Target, kind: str) -> Headers:
    """The headers of one of ADMIN_OK, ADMIN_BAD, PIN_OK or PIN_BAD."""
    if kind not in PIN_OK and kind not in PIN_BAD:
        return admin_headers(t, kind)
    pin = t.admin_pin.encode()
    fill = {
        b"{pin}": pin,
        b"{PIN}": pin.upper(),
        b"{pin-1}": pin[:-1],
        b"{key}": t.admin_key.encode(),
        b"{pin%}": b"".join(b"%%%02X" % c for c in pin),
    }
    out = []
    for name, template in {**PIN_OK, **PIN_BAD}[kind]:
        value = template
        for hole, text in fill.items():
            value = value.replace(hole, text)
        out.append((name, value))
    return out


@functools.cache
@st.composite
def pin_auth(draw: st.DrawFn, t: Target, ok_share: float = 0.7) -> tuple[str, Headers, bool]:
    """(label, headers, authenticated) as seed 002's routes see credentials."""
    if draw(st.floats(0, 1)) < ok_share:
        kind = draw(st.sampled_from((*ADMIN_OK, *PIN_OK)))
    else:
        kind = draw(st.sampled_from((*ADMIN_BAD, *sorted(PIN_BAD))))
    return kind, pin_headers(t, kind), kind in ADMIN_OK or kind in PIN_OK


def wrong_pin(t: Target) -> tuple[str, Headers]:
    """The credentials a request that might otherwise write gets instead of valid ones."""
    return "wrong PIN (the request might be valid)", pin_headers(t, "wrong PIN")


def refusal(headers: Headers) -> int:
    """What seed 002 answers credentials that are not valid: 403 for a wrong PIN (the
    header is there), 401 when there is none."""
    return 403 if any(name.lower() == b"x-admin-pin" for name, _ in headers) else 401


def path_segment(target: bytes, index: int) -> str:
    """Segment ``index`` of the path as the api routes it (percent-decoded, UTF-8 with
    replacement characters, as uvicorn does)."""
    parts = target.split(b"?", 1)[0].split(b"/")
    return unquote_to_bytes(parts[index]).decode("utf-8", "replace") if index < len(parts) else ""


def routed_parts(target: bytes) -> int:
    """How many segments the api routes the path by (an encoded slash adds some)."""
    return len(routed_path(target).split(b"/"))


def release_of(segment: str) -> int | None:
    """The release id FastAPI reads from a path segment; None when it refuses it (422)."""
    try:
        return RELEASE_ID.validate_python(segment)
    except ValidationError:
        return None


def job_of(segment: str) -> uuid.UUID | None:
    try:
        return JOB_ID.validate_python(segment)
    except ValidationError:
        return None


def release_verdict(release_id: int | None, t: Target) -> str:
    """'' for one of the stack's releases, else what is wrong with the id."""
    if release_id is None:
        return "not the schema"
    return "" if release_id in (t.branch_release_id, t.plain_release_id) else "unknown release"


def query_ok(target: bytes, rules: str) -> bool:
    """Whether the query holds values the route's parameters take (the last of a repeated
    one counts, as in Starlette)."""
    if b"?" not in target:
        return True
    raw = target.split(b"?", 1)[1].decode("latin-1")
    values = dict(parse_qsl(raw, keep_blank_values=True))
    for name, adapter in LIMIT_RULES[rules].items():
        if name in values:
            try:
                adapter.validate_python(values[name])
            except ValidationError:
                return False
    return True


def last_event_ok(headers: Headers) -> bool:
    """Whether Last-Event-ID (the first one) is absent, blank or 1 to 9 ASCII digits."""
    for name, value in headers:
        if name.lower() == b"last-event-id":
            text = value.strip(b" \t").decode("latin-1").strip()
            return not text or (len(text) <= 9 and all("0" <= c <= "9" for c in text))
    return True


def nesting(body: bytes) -> int:
    """The deepest run of brackets in ``body`` (strings not told apart: an upper bound)."""
    depth = deepest = 0
    for byte in body:
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def read_body(headers: Headers, body: bytes) -> tuple[str, Any]:
    """How FastAPI reads a JSON body parameter: ('none' | 'bytes' | 'json', value), or
    ('invalid JSON' | 'unreadable body', None), or ('deep', None) when the api may either
    parse it or run out of recursion."""
    if not body:
        return "none", None
    ctype = next((v for n, v in headers if n.lower() == b"content-type"), b"")
    if not ctype:
        return "bytes", None  # FastAPI's strict content type: not read as JSON
    message = email.message.Message()
    message["content-type"] = ctype.decode("latin-1")
    subtype = message.get_content_subtype()
    if message.get_content_maintype() != "application" or not (
        subtype == "json" or subtype.endswith("+json")
    ):
        return "bytes", None
    if nesting(body) >= DEEP:
        return "deep", None
    try:
        return "json", json.loads(body)
    except json.JSONDecodeError:
        return "invalid JSON", None
    except (ValueError, RecursionError):
        return "unreadable body", None


def body_verdict(request: BadRequest, check: Check) -> tuple[str, ...]:
    """What an authenticated body route answers ``request``: verdicts from ANSWERS
    ('' where the body might be valid: the route writes). ``check(value)`` judges a parsed
    body: one verdict, or ''."""
    kind, value = read_body(request.headers, request.received())
    if kind in ("invalid JSON", "unreadable body"):
        return (kind,)
    if kind == "deep":
        return ("unreadable body", "not the schema", "invalid JSON")
    if kind in ("none", "bytes"):
        return ("not the schema",)
    return (check(value),)


def unauthenticated_body(request: BadRequest) -> tuple[int, ...]:
    """What a body route answers without valid credentials: the body is read and parsed
    before the credentials are checked."""
    kind, _ = read_body(request.headers, request.received())
    if kind in ("invalid JSON", "unreadable body"):
        return ANSWERS[kind]
    if kind == "deep":
        return (refusal(request.headers), 400, 422)
    return (refusal(request.headers),)


def release_create_check(t: Target) -> Check:
    def check(value: Any) -> str:
        try:
            release = ReleaseIn.model_validate(value)
        except Exception:  # ValidationError; anything else the api must refuse too (422)
            return "not the schema"
        if release.git_branch in GIT_REFUSES:
            return "not the schema"  # the api takes a name git refuses: it must not
        return "duplicate name" if release.name in t.release_names else ""

    return check


def release_patch_check(t: Target, release_id: int | None) -> Check:
    """PATCH /releases/{id}: body and path validated together, then the changes, then the
    release looked up; '' when it might write."""

    def check(value: Any) -> str:
        try:
            patch = ReleasePatch.model_validate(value)
        except Exception:  # ValidationError; anything else the api must refuse too (422)
            return "not the schema"
        if release_id is None or patch.git_branch in GIT_REFUSES:
            return "not the schema"
        try:
            changes = patch.changes()
        except ValueError:
            return "refused change"
        known = release_verdict(release_id, t)
        if not changes:
            return known or "fine"
        if known:
            return known
        other = [n for i, n in zip(t.release_ids, t.release_names, strict=True) if i != release_id]
        return "duplicate name" if changes.get("name") in other else ""

    return check


def configure_check(value: Any) -> str:
    try:
        body = ConfigureBody.model_validate(value)
    except Exception:  # ValidationError; anything else the api must refuse too (422)
        return "not the schema"
    if body.enabled is None and body.interval_hours is None:
        return "no configuration"
    return ""


def git_sync_refused(data: dict[str, Any]) -> bool:
    """True when POST /v1/syncs refuses a git-domain body at the edge (api.domains): a
    payload, params other than release_ids, bad ids, or a scope without ids."""
    if data.get("payload") is not None:
        return True
    params = data.get("params", {})
    if not isinstance(params, dict) or set(params) - {"release_ids"}:
        return True
    ids = params.get("release_ids")
    if ids is not None and (
        not isinstance(ids, list)
        or not 0 < len(ids) <= 100
        or not all(type(i) is int and 0 < i <= INT4_MAX for i in ids)
    ):
        return True
    return ids is None and data.get("scope") not in (None, "all")


def git_may_write(method: str, template: str, path: bytes, body: bytes, t: Target) -> bool:
    """Whether a Schemathesis case on a seed 002 route might write with valid credentials
    (its content type aside: any JSON body counts as read)."""
    if method == "GET":
        return False
    if template.endswith("/trigger"):
        return True  # nothing to sync today; a case has no reason to rely on it
    if template.endswith("/trigger/{release_id}"):
        return release_of(path_segment(path, 6)) == t.branch_release_id
    try:
        value = json.loads(body) if body.strip() else None
    except (ValueError, RecursionError):
        return False
    if template.endswith("/configure"):
        return configure_check(value) == ""
    if method == "POST":
        return release_create_check(t)(value) == ""
    release_id = release_of(path_segment(path, 5))
    if method == "DELETE":
        return release_id in t.release_ids
    return release_patch_check(t, release_id)(value) == ""
