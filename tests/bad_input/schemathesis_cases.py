"""Schemathesis's negative cases from the api's OpenAPI document, made unable to write."""

from __future__ import annotations

import json
import re
import uuid
from hashlib import sha256
from typing import Any

from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.core import NotSet

from tests.bad_input.credentials import ADMIN_OK, admin_headers, now_ts, signature_headers
from tests.bad_input.git_rules import git_may_write
from tests.bad_input.request import BadRequest, Target, build, quoted, shorten
from tests.bad_input.saas_validity import (
    app_create_refused,
    app_update_refused,
    schedule_create_refused,
    schedule_update_refused,
    sync_refused,
)
from tests.bad_input.validity import push_refused, sync_create_refused
from tests.raw_http import Headers


def case_query(case: Case[Any]) -> list[bytes]:
    query = []
    for name, value in (case.query or {}).items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
            query.append(quoted(str(name)) + b"=" + quoted(text))
    return query


def case_headers(case: Case[Any]) -> Headers:
    """The case's headers that have a plain name, control bytes made '?'."""
    headers: Headers = []
    for name, value in (case.headers or {}).items():
        text = value if isinstance(value, str) else json.dumps(value)
        raw = text.encode("utf-8", "surrogatepass")
        raw = bytes(b if b >= 0x20 and b != 0x7F else 0x3F for b in raw)
        if re.fullmatch(r"[A-Za-z0-9-]+", str(name)):
            headers.append((str(name).encode(), raw))
    return headers


def case_body(case: Case[Any]) -> bytes | None:
    """The case's body as bytes; None when it has none."""
    if isinstance(case.body, NotSet):
        return None
    if isinstance(case.body, bytes):
        return case.body
    text = json.dumps(case.body, ensure_ascii=False, default=repr)
    return text.encode("utf-8", "surrogatepass")


def may_write(method: str, template: str, path: bytes, body: bytes, t: Target) -> bool:
    """Whether the case might write with admin credentials: a body that might be valid, or
    the existing schedule or app named for a change."""
    if "/api/v1/admin/" in template:
        return git_may_write(method, template, path, body, t)
    existing = path.rsplit(b"/", 1)[-1] in (t.schedule_id.encode(), quoted(t.app_key))
    if (method, template) == ("POST", "/v1/schedules"):
        return not schedule_create_refused(body)
    if (method, template) == ("POST", "/v1/apps"):
        return not app_create_refused(body, t)
    if (method, template) == ("POST", "/sync"):
        return not sync_refused(body, t)
    if method == "PATCH" and template == "/v1/schedules/{schedule_id}":
        return existing and not schedule_update_refused(body, t.schedule_domain)
    if method == "PATCH" and template == "/v1/apps/{app_key}":
        return existing and not app_update_refused(body, t)
    if method in ("DELETE", "POST") and "{" in template:
        return existing or (b"/run" in path and t.schedule_id.encode() in path)
    return method == "POST" and not sync_create_refused(body, t)


def from_case(case: Case[Any], t: Target, auth_kind: str) -> BadRequest:
    """A Schemathesis case on the wire, with ``auth_kind`` (admin) credentials; a signed
    push and a body that might create a job are kept from being valid."""
    method = case.method.upper()
    template = case.operation.path
    path = case.formatted_path.encode("utf-8", "surrogatepass")
    query = case_query(case)
    headers = case_headers(case)
    body = case_body(case)
    if body is None:
        body = b""
    else:
        headers.append((b"content-type", (case.media_type or "application/json").encode()))
    request = build(
        f"{method} {template}",
        auth_kind,
        "schemathesis negative case",
        method,
        path,
        query,
        headers,
        body,
        must_refuse=method == "POST" or auth_kind not in ADMIN_OK,
        detail=f"{shorten(path, 50)}?{shorten(b'&'.join(query), 40)} {shorten(body, 60)}",
    )
    if template == "/api/internal/dictionary-upserts":
        rid = f"st-{uuid.uuid4()}".encode()
        if not push_refused(body, rid, t):
            rid = b"other-" + rid
        body_hash = sha256(body).hexdigest()
        request.headers += signature_headers(t.push_secrets[-1], now_ts(), rid, body_hash)
        request.auth = "signed"
    elif auth_kind in ADMIN_OK and may_write(method, template, path, body, t):
        request.auth = "none (body might be valid)"
        request.must_refuse = True
    else:
        request.headers += admin_headers(t, auth_kind)
    if template == "/api/admin/sync-models" and method == "POST":
        request.headers = [
            h for h in request.headers if h[0] not in (b"authorization", b"x-admin-pin")
        ]
    return request


@st.composite
def schemathesis_request(
    draw: st.DrawFn, t: Target, cases: st.SearchStrategy[Case[Any]]
) -> BadRequest:
    case = draw(cases)
    auth_kind = draw(st.sampled_from((*ADMIN_OK, *ADMIN_OK, "none", "wrong key")))
    return from_case(case, t, auth_kind)
