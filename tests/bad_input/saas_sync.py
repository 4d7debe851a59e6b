"""supasaasy's sync endpoint: POST /sync and /functions/v1/sync, its preflight, other methods."""

from __future__ import annotations

import functools

from hypothesis import strategies as st

from tests.bad_input.app_keys import app_key, raw_key_body
from tests.bad_input.bodies import (
    Framing,
    arrives_whole,
    content_type,
    corrupted,
    frame,
    framing_for,
)
from tests.bad_input.credentials import ADMIN_BAD, admin_headers
from tests.bad_input.noise import noise_headers, unknown_query
from tests.bad_input.request import BadRequest, Target, build, shorten
from tests.bad_input.saas_answers import CORS_ORIGIN
from tests.bad_input.saas_validity import sync_refused
from tests.bad_input.values import KINDS, deep_value, obj_bytes, odd_value, text_of
from tests.raw_http import Headers

SYNC_PATHS = ("/sync", "/functions/v1/sync")
# The admin key as supasaasy reads it: a Bearer key only (no PIN).
KEY_OK = ("admin key", "admin key, lowercase scheme", "admin key and a wrong PIN")
KEY_BAD = (*ADMIN_BAD, "admin PIN")
EXTRA_BAD = (
    "key's first 8 characters",
    "key uppercase",
    "key twice",
    "Bearer with a colon",
    "Token scheme",
    "key with a raw 0xB2",
)
SYNC_FOCUS = (
    ["app_key"] * 3
    + ["field"] * 3
    + ["odd value"] * 2
    + ["corrupted"] * 2
    + ["raw app_key", "top level", "duplicate keys", "framing", "oversize"]
)
BAD_FIELD_VALUES: dict[str, tuple[str, ...]] = {
    "mode": ('"FULL"', '""', '"sometimes"', "null", "1", '["full"]', '"full "', '"inkremental"'),
    "resource_types": (
        '"customer"',
        "[1]",
        "[null]",
        '["invoice"]',
        '["customer\\u0000"]',
        '["Customer"]',
        "{}",
        "true",
        '["customer", 2]',
        '["subscription_item"]',
        '["plan"]',
        '[["customer"]]',
    ),
    "immediate": ('"true"', "1", "0", "null", '"false"', "[]", "{}"),
}
OTHER_METHODS = ("GET", "PUT", "PATCH", "DELETE", "HEAD")  # answered 405 by the route
ORIGINS: dict[str, bytes | None] = {
    "the configured origin": CORS_ORIGIN.encode(),
    "none": None,
    "another origin": b"https://evil.example",
    "null": b"null",
    "*": b"*",
    "configured with a trailing slash": CORS_ORIGIN.encode() + b"/",
    "configured in uppercase": CORS_ORIGIN.upper().encode(),
    "configured plus a suffix": CORS_ORIGIN.encode() + b".evil.example",
    "raw bytes 0xFF": b"https://\xff.example",
    "8 KB": b"https://" + b"o" * 8192,
    "two origins": CORS_ORIGIN.encode() + b" https://evil.example",
}


def saas_key_headers(t: Target, kind: str) -> Headers:
    """The headers of one of KEY_OK, KEY_BAD or EXTRA_BAD."""
    key = t.admin_key.encode()
    extra: dict[str, Headers] = {
        "key's first 8 characters": [(b"authorization", b"Bearer " + key[:8])],
        "key uppercase": [(b"authorization", b"Bearer " + key.upper())],
        "key twice": [(b"authorization", b"Bearer " + key + b" " + key)],
        "Bearer with a colon": [(b"authorization", b"Bearer: " + key)],
        "Token scheme": [(b"authorization", b"Token " + key)],
        "key with a raw 0xB2": [(b"authorization", b"Bearer " + key + b"\xb2")],
    }
    return extra[kind] if kind in extra else admin_headers(t, kind)


@functools.cache
@st.composite
def saas_auth(draw: st.DrawFn, t: Target, ok_share: float = 0.75) -> tuple[str, Headers, bool]:
    """(label, headers, authenticated) as supasaasy's routes see credentials."""
    if draw(st.floats(0, 1)) < ok_share:
        kind = draw(st.sampled_from(KEY_OK))
    else:
        kind = draw(st.sampled_from((*KEY_BAD, *EXTRA_BAD)))
    return kind, saas_key_headers(t, kind), kind in KEY_OK


def base_fields(draw: st.DrawFn, t: Target, known: bool = True) -> list[tuple[str, str]]:
    """A sync body for the configured app (when ``known``, at random) or an unknown one,
    as (key, JSON text) pairs."""
    key = draw(st.sampled_from(["nope", "stripe_prod"]))
    if known and draw(st.booleans()):
        key = t.app_key
    fields = [("app_key", text_of(key))]
    if draw(st.booleans()):
        fields.append(("mode", draw(st.sampled_from(['"full"', '"incremental"']))))
    if draw(st.booleans()):
        types = draw(st.lists(st.sampled_from(t.app_resources), max_size=3))
        fields.append(("resource_types", text_of(types)))
    if draw(st.booleans()):
        fields.append(("immediate", "false"))
    return fields


def odd_fields(draw: st.DrawFn, t: Target, focus: str) -> tuple[list[tuple[str, str]], str]:
    """The body's fields with what ``focus`` makes odd, and its label."""
    fields = base_fields(draw, t)
    if focus == "app_key":
        if draw(st.integers(0, 3)) == 0:
            name, value = draw(st.sampled_from(sorted(KINDS.items())))
            return [("app_key", value), *fields[1:]], f"app_key = a JSON {name}"
        key, label = draw(app_key(t, known_share=0.1))
        return [("app_key", text_of(key)), *fields[1:]], label
    if focus == "field":
        name = draw(st.sampled_from(sorted(BAD_FIELD_VALUES)))
        value = draw(st.sampled_from(BAD_FIELD_VALUES[name]))
        kept = [(k, v) for k, v in fields if k != name]
        return [*kept, (name, value)], f"{name} = {shorten(value, 24)}"
    if focus == "odd value":
        name = draw(st.sampled_from(["app_key", "mode", "resource_types", "immediate", "x"]))
        value, what = draw(odd_value())
        kept = [(k, v) for k, v in fields if k != name]
        return [*kept, (name, value)], f"{name} = {what}"
    # "duplicate keys"
    other = draw(st.sampled_from(['"bad key!"', "1", "null", text_of(t.app_key)]))
    pairs = [("app_key", other), *fields] if draw(st.booleans()) else [*fields, ("app_key", other)]
    return pairs, f"app_key twice, one {shorten(other, 20)}"


def oversize(draw: st.DrawFn, body: bytes, limit: int) -> tuple[bytes, Framing]:
    """``body`` padded past ``limit``: honest Content-Length, chunked, or declared only."""
    kind = draw(st.sampled_from(["honest", "honest", "chunked", "declared"]))
    if kind == "honest":
        padded = body + b" " * (limit + 1 - len(body) + draw(st.integers(0, 1000)))
        return padded, Framing(label="oversize body, honest Content-Length")
    force = draw(
        framing_for(body, limit, force=True).filter(lambda f: f.kind == "length")
        | st.just(Framing())
    )
    del force  # one draw, whatever it gives: the kind below decides
    if kind == "chunked":
        return body, Framing("chunked", chunks=(65536,), label="oversize body, chunked")
    declared = draw(st.sampled_from([limit + 1, limit * 4, 2**31, 2**63 - 1]))
    return body, Framing("declared", declared, label="oversize body, declared Content-Length")


@st.composite
def sync_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """POST /sync (or /functions/v1/sync): never a body that would start a sync."""
    path = draw(st.sampled_from(SYNC_PATHS))
    auth, headers, authed = draw(saas_auth(t))
    focus = draw(st.sampled_from(SYNC_FOCUS))
    if focus == "raw app_key":
        body, label = draw(raw_key_body(draw(st.sampled_from([b"", b',"mode":"full"']))))
    elif focus == "top level":
        value, label = draw(
            st.sampled_from(sorted(KINDS.items())).map(lambda kv: (kv[1], f"body: a JSON {kv[0]}"))
            | deep_value()
            | odd_value()
        )
        body = value.encode("utf-8", "surrogatepass")
    elif focus in ("corrupted", "framing", "oversize"):
        # An unknown app, so that the admin key is kept and the body read (404).
        body, label = obj_bytes(base_fields(draw, t, known=focus == "corrupted")), ""
        if focus == "corrupted":
            body, label = draw(corrupted(body))
    else:
        fields, label = odd_fields(draw, t, focus)
        body = obj_bytes(fields)
    if focus == "oversize":
        body, framing = oversize(draw, body, t.saas_max_body)
    else:
        framing = draw(framing_for(body, t.saas_max_body, force=focus == "framing"))
    ctype, ctype_label = draw(content_type())
    label = ", ".join(x for x in (label, ctype_label, framing.label) if x) or "body: plain"
    extra = draw(noise_headers())
    if draw(st.integers(0, 9)) == 0:
        extra = [*extra, (b"origin", CORS_ORIGIN.encode())]
    query = draw(unknown_query()) if draw(st.integers(0, 9)) == 0 else []
    request = build(f"POST {path}", auth, label, "POST", path.encode(), query, must_refuse=True)
    frame(request, framing, body, t.saas_max_body)
    if authed and arrives_whole(framing) and not sync_refused(request.received(), t):
        auth, authed = "wrong key (body might be valid)", False
        headers = saas_key_headers(t, "wrong key")
    request.auth = auth
    request.headers = headers + ctype + extra
    if not authed:
        request.expect = (401,)
    elif framing.label.startswith("oversize"):
        request.expect = (413,)  # seed 001: over 1 MiB, declared or not
    request.detail = shorten(request.received(), 140)
    return request


@st.composite
def preflight_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """OPTIONS on the sync paths: a CORS preflight from odd origins, always 204."""
    path = draw(st.sampled_from(SYNC_PATHS))
    name = draw(st.sampled_from(sorted(ORIGINS)))
    origin = ORIGINS[name]
    headers: Headers = [] if origin is None else [(b"origin", origin)]
    asked = draw(st.sampled_from([b"POST", b"DELETE", b"post", b"\xff", b"", None]))
    if asked is not None:
        headers.append((b"access-control-request-method", asked))
    if draw(st.booleans()):
        headers.append((b"access-control-request-headers", b"authorization, x-\xb2, content-type"))
    auth, auth_headers, _ = draw(saas_auth(t, ok_share=0.5))
    body = draw(st.sampled_from([b"", b"", b"{}", b'{"app_key":"nope"}', b"\xff"]))
    return build(
        f"OPTIONS {path}",
        auth,
        f"preflight, Origin: {name}",
        "OPTIONS",
        path.encode(),
        (),
        headers + auth_headers + draw(noise_headers()),
        body,
        expect=(204,),
        detail=f"Origin {shorten(origin or b'-', 40)} method {shorten(asked or b'-', 10)}",
    )


@st.composite
def other_method_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """GET, PUT, PATCH, DELETE or HEAD on the sync paths: 405 in supasaasy's words."""
    path = draw(st.sampled_from(SYNC_PATHS))
    method = draw(st.sampled_from(OTHER_METHODS))
    auth, headers, _ = draw(saas_auth(t))
    body = b""
    if method != "HEAD":
        body = draw(st.sampled_from([b"", b"{}", obj_bytes([("app_key", text_of(t.app_key))])]))
    return build(
        f"{method} {path}",
        auth,
        f"method {method}",
        method,
        path.encode(),
        draw(unknown_query()) if draw(st.booleans()) else [],
        headers + draw(noise_headers()),
        body,
        must_refuse=True,
        expect=(405,),
    )


def sync_family(t: Target) -> st.SearchStrategy[BadRequest]:
    """The sync endpoint's requests, most of them POSTs."""
    weighted = [sync_request(t)] * 8 + [preflight_request(t), other_method_request(t)]
    return st.sampled_from(weighted).flatmap(lambda strategy: strategy)
