"""/v1/apps: list, create, read, change and delete saas apps, never one made, changed or gone."""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from hypothesis import strategies as st

from tests.bad_input.app_keys import BAD_KEYS, FEATURED_BAD_KEYS, app_segment, raw_key_body
from tests.bad_input.bodies import arrives_whole, content_type, corrupted, frame, framing_for
from tests.bad_input.credentials import admin_auth, admin_headers
from tests.bad_input.noise import noise_headers, unknown_query
from tests.bad_input.request import BadRequest, Target, build, shorten
from tests.bad_input.saas_answers import routed_path
from tests.bad_input.saas_sync import oversize
from tests.bad_input.saas_validity import (
    UNSET_PREFIX,
    app_create_refused,
    app_update_refused,
    set_secret_vars,
)
from tests.bad_input.values import KINDS, deep_value, obj_bytes, odd_value, text_of

PREFIX = b"/v1/apps"
ONE = re.compile(rb"/v1/apps/[^/]+")
Fields = list[tuple[str, str]]
# Values of each field the api must refuse: (field, JSON text).
BREAKERS: dict[str, tuple[str, str]] = {
    "connector unknown": ("connector", '"hubspot"'),
    "connector capitalised": ("connector", '"Stripe"'),
    "connector empty": ("connector", '""'),
    "connector null": ("connector", "null"),
    "connector with a NUL": ("connector", '"stripe\\u0000"'),
    "resource unknown": ("resources", '["invoice"]'),
    "resource capitalised": ("resources", '["customer", "Customer"]'),
    "resources a string": ("resources", '"customer"'),
    "resources with a number": ("resources", "[1]"),
    "schedule with 4 fields": ("schedule", '"0 * * *"'),
    "schedule minute 61": ("schedule", '"61 * * * *"'),
    "schedule with 6 fields": ("schedule", '"0 0 * * * *"'),
    "schedule @reboot": ("schedule", '"@reboot"'),
    "schedule a number": ("schedule", "5"),
    "mode unknown": ("mode", '"sometimes"'),
    "mode null": ("mode", "null"),
    "sync_from 30 February": ("sync_from", '"2024-02-30"'),
    "sync_from month 13": ("sync_from", '"2024-13-01"'),
    "sync_from a word": ("sync_from", '"yesterday"'),
    "sync_from year 0": ("sync_from", '"0000-01-01"'),
    "api_base ftp": ("api_base", '"ftp://127.0.0.1/"'),
    "api_base without a host": ("api_base", '"http://"'),
    "api_base javascript:": ("api_base", '"javascript:alert(1)"'),
    "api_base relative": ("api_base", '"//127.0.0.1"'),
    "api_base broken IPv6": ("api_base", '"http://[::1"'),
    "api_base a number": ("api_base", "80"),
    "unknown field": ("x_unknown", "1"),
    "secret variable not set": ("api_key_env", text_of(UNSET_PREFIX + "KEY")),
    "webhook variable not set": ("webhook_secret_env", text_of(UNSET_PREFIX + "HOOK")),
    "secret variable with a NUL": ("api_key_env", '"A\\u0000B"'),
    "secret variable with a lone surrogate": ("api_key_env", '"\\ud800"'),
    "webhook variable with a lone surrogate": ("webhook_secret_env", '"\\udc00X"'),
    "secret variable with '='": ("api_key_env", '"A=B"'),
    "secret variable a number": ("api_key_env", "1"),
}
# Names no environment can hold: drawn more often than the rest.
FEATURED_BREAKERS = (
    "secret variable with a NUL",
    "secret variable with a lone surrogate",
    "webhook variable with a lone surrogate",
    "secret variable with '='",
)
FOCUS = ["breaker"] * 5 + ["bad app_key"] * 4 + ["odd value"] * 2 + ["corrupted", "top level"]
FOCUS += ["framing", "oversize"]


def fields_for(draw: st.DrawFn, t: Target, key: str, set_vars: bool) -> Fields:
    """An app's body for ``key`` as (key, JSON text) pairs; with ``set_vars`` (or at
    random) naming secret variables that are set."""
    fields = [("app_key", text_of(key)), ("connector", '"stripe"')]
    if draw(st.booleans()) or set_vars:
        api_key, hook = set_secret_vars(t)
        fields += [("api_key_env", text_of(api_key)), ("webhook_secret_env", text_of(hook))]
    for name, value in (
        ("api_base", text_of(t.app_api_base)),
        ("resources", '["customer"]'),
        ("schedule", '"0 * * * *"'),
        ("sync_from", '"2024-01-01"'),
    ):
        if draw(st.integers(0, 3)) == 0:
            fields.append((name, value))
    return fields


def app_body(draw: st.DrawFn, t: Target, focus: str, patch: bool) -> tuple[bytes, str]:
    """A create (or, with ``patch``, change) body odd in the way ``focus`` says."""
    key = draw(st.sampled_from(["fuzz_new", "nope", t.app_key]))
    fields = fields_for(draw, t, key, set_vars=focus == "bad app_key")  # the key alone wrong
    if patch:
        fields = fields[2:]
    if focus == "bad app_key":
        if not patch and draw(st.integers(0, 4)) == 0:
            return draw(raw_key_body(b',"connector":"stripe"'))
        if draw(st.integers(0, 3)) == 0:
            name, value = draw(st.sampled_from(sorted(KINDS.items())))
            return obj_bytes([("app_key", value), *fields[1:]]), f"app_key = a JSON {name}"
        names = FEATURED_BAD_KEYS if draw(st.integers(0, 2)) > 0 else sorted(BAD_KEYS)
        name = draw(st.sampled_from(names))
        bad = BAD_KEYS[name].replace("{app}", t.app_key)
        fields = [(k, v) for k, v in fields if k != "app_key"]  # one app_key: the bad one
        return obj_bytes([("app_key", text_of(bad)), *fields]), f"app_key: {name}"
    if focus == "odd value":
        name = draw(st.sampled_from(["connector", "resources", "schedule", "api_key_env", "x"]))
        value, what = draw(odd_value())
        kept = [(k, v) for k, v in fields if k != name]
        return obj_bytes([*kept, (name, value)]), f"{name} = {what}"
    if focus == "top level":
        value, what = draw(
            st.sampled_from(sorted(KINDS.items())).map(lambda kv: (kv[1], f"a JSON {kv[0]}"))
            | deep_value()
        )
        return value.encode(), f"body: {what}"
    name = draw(st.sampled_from(FEATURED_BREAKERS if draw(st.booleans()) else sorted(BREAKERS)))
    field, value = BREAKERS[name]
    body = obj_bytes([*[(k, v) for k, v in fields if k != field], (field, value)])
    if focus == "corrupted":
        return draw(corrupted(body))
    return body, name if focus == "breaker" else ""


def names_the_app(segment: bytes, t: Target) -> bool:
    return unquote_to_bytes(segment) == t.app_key.encode()


@st.composite
def app_write(draw: st.DrawFn, t: Target) -> BadRequest:
    """POST /v1/apps or PATCH /v1/apps/{app_key}: a body that changes nothing."""
    patch = draw(st.integers(0, 2)) == 0
    focus = draw(st.sampled_from(FOCUS))
    body, label = app_body(draw, t, focus, patch)
    if focus == "oversize":
        body, framing = oversize(draw, body, t.max_body)
    else:
        framing = draw(framing_for(body, t.max_body, force=focus == "framing"))
    auth, headers, authed = draw(admin_auth(t, ok_share=0.85))
    segment, raw = b"", False
    route, path = "POST /v1/apps", PREFIX
    if patch:
        segment, key_label, raw = draw(app_segment(t, known_share=0.5))
        route, path = "PATCH /v1/apps/{app_key}", PREFIX + b"/" + segment
        label = f"{key_label}, {label}"
    request = build(route, auth, label, route.split()[0], path, must_refuse=True)
    request.parser_may_refuse = raw
    frame(request, framing, body, t.max_body)
    received = request.received()
    if authed and arrives_whole(framing):
        known = names_the_app(segment, t)
        if (not patch and not app_create_refused(received, t)) or (
            patch and known and not app_update_refused(received, t)
        ):
            request.auth = "wrong key (body might be valid)"
            headers = admin_headers(t, "wrong key")
    ctype, ctype_label = draw(content_type())
    request.headers = headers + ctype + draw(noise_headers())
    request.label = ", ".join(x for x in (label, ctype_label, framing.label) if x) or "plain"
    request.detail = f"{shorten(path, 40)} {shorten(received, 110)}"
    return request


@st.composite
def app_other(draw: st.DrawFn, t: Target) -> BadRequest:
    """GET /v1/apps, GET or DELETE /v1/apps/{app_key}: the configured app never deleted."""
    what = draw(st.sampled_from(["list", "list", "get", "get", "delete", "delete"]))
    auth, headers, authed = draw(admin_auth(t, ok_share=0.75))
    query = draw(unknown_query()) if draw(st.integers(0, 3)) == 0 else []
    raw = False
    if what == "list":
        route, path, label = "GET /v1/apps", PREFIX, "list"
    else:
        segment, label, raw = draw(app_segment(t, known_share=0.3))
        method = "GET" if what == "get" else "DELETE"
        route, path = f"{method} /v1/apps/{{app_key}}", PREFIX + b"/" + segment
        if method == "DELETE" and authed and names_the_app(segment, t):
            auth, authed = "wrong key (the configured app)", False
            headers = admin_headers(t, "wrong key")
    body = b""
    if what == "delete" and draw(st.integers(0, 4)) == 0:
        body = draw(st.sampled_from([b"{}", b'{"app_key":"nope"}', b"\xff"]))
    headers = headers + draw(noise_headers())
    request = build(route, auth, label, route.split()[0], path, query, headers, body)
    request.must_refuse = what == "delete"
    request.parser_may_refuse = raw
    request.detail = f"{shorten(path, 60)}?{shorten(b'&'.join(query), 40)}"
    if not authed and not body and not raw and (what == "list" or ONE.fullmatch(routed_path(path))):
        request.expect = (401,)  # credentials are checked before the path and the query
    return request
