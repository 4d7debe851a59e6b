"""Route-independent requests: public GETs, disallowed methods, unknown paths, integer params."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.bad_input.credentials import admin_auth
from tests.bad_input.noise import noise_headers, unknown_query
from tests.bad_input.query import VALID_ISH, query_value
from tests.bad_input.request import BadRequest, Target, build, shorten

PUBLIC_GETS = (
    b"/healthz",
    b"/readyz",
    b"/openapi.json",
    b"/docs",
    b"/redoc",
    b"/docs/oauth2-redirect",
)
OTHER_METHODS = (
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
    "HEAD",
    "TRACE",
    "PROPFIND",
    "MKCOL",
    "LOCK",
    "PURGE",
    "SEARCH",
    "CONNECT",
)
UNKNOWN_PATHS = (
    b"/",
    b"/v2/syncs",
    b"/v1",
    b"/v1/",
    b"/v1/syncs/",
    b"/V1/SYNCS",
    b"//v1/syncs",
    b"/v1//syncs",
    b"/v1/syncs/%s/events/extra",
    b"/v1/syncs/%s/",
    b"/v1/syncs/../healthz",
    b"/v1/syncs/%2e%2e/%2e%2e/healthz",
    b"/api/internal/dictionary-upserts/",
    b"/api/internal/dictionary-upserts/status/x",
    b"/api/admin",
    b"/.env",
    b"/%00",
    b"/%FF%FE",
    b"/%C2%B2",
    b"/healthz;x=1",
    b"/healthz%20",
    b"/healthz/",
    b"/readyz/..",
    b"/" + b"a" * 8000,
    b"http://127.0.0.1/v1/syncs",
    b"*",
    b"/docs/../openapi.json",
    b"/static/x.js",
    b"/sync/",
    b"/functions/v1/sync/",
    b"/functions/v1/",
    b"/functions/v1/job-status/",
    b"/functions/v1/job-status/%s/x",
    b"/sync/jobs/",
    b"/webhook",
    b"/webhook/",
    b"/webhook/nope/x",
    b"/v1/apps/",
    b"/v1/apps/nope/x",
    b"/v1/schedules/",
    b"/v1/schedules/%s/run/x",
    b"/v1/alerts/",
)


@st.composite
def param_request(draw: st.DrawFn, t: Target, route: str, path: bytes, name: str) -> BadRequest:
    """An admin GET with one integer query parameter (stats, models history)."""
    auth, headers, authed = draw(admin_auth(t, ok_share=0.8))
    raw, value_name = draw(query_value())
    query = [name.encode() + b"=" + raw]
    if draw(st.booleans()):
        query += draw(unknown_query())
    return build(
        route,
        auth,
        f"{name}: {value_name}",
        "GET",
        path,
        query,
        headers + draw(noise_headers()),
        must_refuse=not authed,
        odd_if_ok=value_name not in VALID_ISH,
        detail=f"?{shorten(b'&'.join(query), 80)}",
    )


@st.composite
def public_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """A GET of a public path with something extra: query, odd headers, a body, HTTP/1.0."""
    path = draw(st.sampled_from(PUBLIC_GETS))
    what = draw(st.sampled_from(["query", "headers", "body", "chunked body", "HTTP/1.0"]))
    query = draw(unknown_query()) if what == "query" else []
    headers = draw(noise_headers())
    body = b""
    kw: dict[str, Any] = {}
    if what == "headers":
        headers += [
            (b"x-sync-timestamp", b"\xb2"),
            (b"last-event-id", b"\xb2"),
            (b"content-length", b"0"),
            (b"accept-encoding", b"\xff"),
        ]
    elif what in ("body", "chunked body"):
        body = draw(st.binary(max_size=200))
        kw["framing"] = "chunked" if what == "chunked body" else "length"
        kw["chunks"] = (3,)
    elif what == "HTTP/1.0":
        kw["version"] = b"HTTP/1.0"
        kw["keeps_alive"] = False
    route = "GET " + path.decode()
    return build(route, "none", f"GET with {what}", "GET", path, query, headers, body, **kw)


@st.composite
def method_request(draw: st.DrawFn, t: Target, routes: dict[str, set[str]]) -> BadRequest:
    """A method the path does not allow (405), with or without credentials and a body."""
    path = draw(st.sampled_from(sorted(routes)))
    allowed = routes[path]
    method = draw(st.sampled_from([m for m in (*OTHER_METHODS, "GET", "POST") if m not in allowed]))
    existing = draw(st.booleans())
    segment = t.seed_job_id if existing else str(draw(st.uuids()))
    concrete = (
        path.replace("{job_id}", segment)
        .replace("{schedule_id}", t.schedule_id if existing else segment)
        .replace("{app_key}", t.app_key if existing else "nope")
        .replace("{release_id}", str(t.branch_release_id) if existing else "999999")
        .encode()
    )
    auth, headers, _ = draw(admin_auth(t))
    body = draw(st.sampled_from([b"", b"{}", b'{"domain":"models"}', b"\xff"]))
    if method == "CONNECT":
        body = b""
    return build(
        f"{method} {path}",
        auth,
        f"method {method} not allowed",
        method,
        concrete,
        (),
        headers + draw(noise_headers()),
        body,
        must_refuse=True,
    )


@st.composite
def unknown_path_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """GET, POST or DELETE of a path no route serves, some of them near one that does."""
    pattern = draw(st.sampled_from(UNKNOWN_PATHS))
    path = pattern.replace(b"%s", t.seed_job_id.encode())
    method = draw(st.sampled_from(["GET", "POST", "DELETE"]))
    auth, headers, _ = draw(admin_auth(t))
    body = b""
    if method == "POST":
        body = b'{"domain":"nope"}'
        headers = [*headers, (b"content-type", b"application/json")]
    return build(
        f"{method} (other paths)",
        auth,
        f"path {shorten(pattern, 40)}",
        method,
        path,
        (),
        headers + draw(noise_headers()),
        body,
        must_refuse=method != "GET",
    )
