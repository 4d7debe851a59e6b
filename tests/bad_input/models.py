"""The models routes: POST /api/internal/sync-models (token or HMAC) and the admin trigger."""

from __future__ import annotations

import hmac
from hashlib import sha256

from hypothesis import strategies as st

from tests.bad_input.bodies import arrives_whole, content_type, corrupted, frame, framing_for
from tests.bad_input.credentials import admin_auth
from tests.bad_input.noise import noise_headers
from tests.bad_input.request import BadRequest, Target, build, shorten
from tests.bad_input.validity import models_trigger_refused
from tests.bad_input.values import obj_bytes, odd_value, text_of
from tests.raw_http import Headers

TRIGGER_ROUTE = "POST /api/internal/sync-models"
TRIGGER_PATH = b"/api/internal/sync-models"
ADMIN_TRIGGER_ROUTE = "POST /api/admin/sync-models"
ADMIN_TRIGGER_PATH = b"/api/admin/sync-models"
TRIGGER_AUTH = ["token", "token", "hmac", "hmac", "wrong token", "wrong hmac", "none", "admin key"]


def trigger_headers(t: Target, how: str, body: bytes) -> Headers:
    """The credentials of one of TRIGGER_AUTH for ``body``."""
    token = b"Bearer " + t.models_token.encode()
    return {
        "token": [(b"authorization", token)],
        "hmac": [
            (b"x-signature", hmac.new(t.models_secret.encode(), body, sha256).hexdigest().encode())
        ],
        "wrong token": [(b"authorization", token + b"\xb2")],
        "wrong hmac": [(b"x-signature", b"sha256=" + b"0" * 64)],
        "none": [],
        "admin key": [(b"authorization", b"Bearer " + t.admin_key.encode())],
    }[how]


@st.composite
def models_trigger_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """POST /api/internal/sync-models: token or body HMAC, never a body it accepts."""
    value, what = draw(odd_value())
    shape = draw(st.sampled_from(["source", "top", "unknown field"]))
    if shape == "source":
        body = obj_bytes([("source", value)])
        label = f"source = {what}"
    elif shape == "top":
        body = value.encode("utf-8", "surrogatepass")
        label = f"body = {what}"
    else:
        body = obj_bytes([("source", text_of("s" * 201)), ("x", value)])
        label = f"source too long, x = {what}"
    if draw(st.integers(0, 3)) == 0:
        body, label = draw(corrupted(body))
    framing = draw(framing_for(body, t.max_body))
    label = f"{label}; {framing.label}" if framing.label else label
    how = draw(st.sampled_from(TRIGGER_AUTH))
    request = build(TRIGGER_ROUTE, how, label, "POST", TRIGGER_PATH, must_refuse=True)
    frame(request, framing, body, t.max_body)
    received = request.received()
    if how in ("token", "hmac") and arrives_whole(framing) and not models_trigger_refused(received):
        how = "wrong token"
        request.auth = "wrong token (body might be accepted)"
    ctype, _ = draw(content_type())
    request.headers = trigger_headers(t, how, received) + ctype + draw(noise_headers())
    request.detail = shorten(received, 140)
    return request


@st.composite
def models_admin_trigger(draw: st.DrawFn, t: Target) -> BadRequest:
    """POST /api/admin/sync-models: authenticated only with an oversize declared body."""
    framing = draw(st.sampled_from(["length", "length", "chunked", "declared", "long", "short"]))
    body = draw(st.sampled_from([b"", b"{}", b'{"source":"x"}', b"\xff\xfe", b"[" * 300]))
    if framing == "short" and len(body) < 2:
        framing = "length"
    if framing == "declared":
        auth, headers, _ = draw(admin_auth(t, ok_share=0.7))
        label = "oversize body, declared Content-Length"
        body = body[:100]
        declared = t.max_body + draw(st.integers(1, 10**6))
        chunks: tuple[int, ...] = ()
    else:
        auth, headers, _ = draw(admin_auth(t, ok_share=0.0))
        headers = headers + draw(noise_headers())
        label = f"body {shorten(body, 12)}, {framing}"
        declared = max(1, len(body) - 1)
        chunks = (7,)
    return build(
        ADMIN_TRIGGER_ROUTE,
        auth,
        label,
        "POST",
        ADMIN_TRIGGER_PATH,
        (),
        headers,
        body,
        framing=framing,
        declared=declared,
        chunks=chunks,
        must_refuse=True,
    )
