"""POST /webhook/{app_key}: Stripe events with Stripe-Signature headers that never vouch for one."""

from __future__ import annotations

import hmac
import time
from hashlib import sha256

from hypothesis import strategies as st

from tests.bad_input.app_keys import app_segment
from tests.bad_input.bodies import arrives_whole, content_type, corrupted, frame, framing_for
from tests.bad_input.noise import noise_headers
from tests.bad_input.request import BadRequest, Target, build, shorten
from tests.bad_input.saas_answers import speaks_saasy
from tests.bad_input.saas_sync import oversize
from tests.bad_input.saas_validity import event_refused
from tests.bad_input.values import KINDS, deep_value, obj, obj_bytes, odd_value, text_of

ROUTE = "POST /webhook/{app_key}"
HANDLED = ("customer.created", "price.deleted", "customer.subscription.updated", "plan.updated")
UNHANDLED = ("invoice.paid", "customer.source.created", "", "customer.created ")
# Signatures the api accepts: sent only with a body it refuses for another reason.
VALID_KINDS = ("right", "right, blanks around the parts", "right among 500 v1", "right, future t")
SIGNATURE_KINDS = (
    *VALID_KINDS,
    *["right, 301 s old", "right, 1 day old", "right, t=0", "right among 500 v1, stale"],
    *["missing", "empty", "v1 with a raw 0xFF", "v1 in UTF-8 Cyrillic", "t with a raw 0xB2"],
    *["no t", "two t", "t letters", "t negative", "t 13 digits", "t fullwidth digits"],
    *["no v1 (v0 only)", "empty v1", "v1 zeros", "v1 uppercase", "v1 sha256= prefix"],
    *["v1 under another secret", "v1 over another body", "500 wrong v1", "semicolons"],
    *["64 KB v1", "v1 before t, wrong", "header twice, wrong first"],
)
EVENT_FOCUS = (
    ["signature"] * 5
    + ["event value"] * 2
    + ["event shape"] * 2
    + ["corrupted", "top level", "framing", "oversize"]
)
EVENT_SHAPES: dict[str, list[tuple[str, str]]] = {
    "no id": [("type", '"customer.created"'), ("data", '{"object":{"id":"cus_1"}}')],
    "id a number": [("id", "1"), ("type", '"customer.created"')],
    "id null": [("id", "null"), ("type", '"customer.created"')],
    "id an object": [("id", '{"id":"evt_1"}'), ("type", '"customer.created"')],
    "data a string": [("id", '"evt_s"'), ("type", '"customer.created"'), ("data", '"x"')],
    "object missing": [("id", '"evt_m"'), ("type", '"customer.created"'), ("data", "{}")],
    "object id a number": [
        ("id", '"evt_n"'),
        ("type", '"customer.created"'),
        ("data", '{"object":{"id":7}}'),
    ],
    "type a number": [("id", '"evt_t"'), ("type", "5"), ("data", '{"object":{"id":"c"}}')],
    "NUL in the id": [("id", '"evt\\u0000"'), ("type", '"customer.created"')],
    "NUL in a key": [("id", '"evt_k"'), ("type", '"price.deleted"'), ("a\\u0000", "1")],
}


def stripe_v1(secret: str, timestamp: bytes, body: bytes) -> bytes:
    """Stripe's v1 signature: HMAC-SHA256 of ``t.body``, hex."""
    return hmac.new(secret.encode(), timestamp + b"." + body, sha256).hexdigest().encode()


def signature_header(kind: str, secret: str, body: bytes) -> bytes | None:
    """The Stripe-Signature of one of SIGNATURE_KINDS for ``body`` (None: no header)."""
    now = int(time.time())
    ts = str(now).encode()
    later = str(now + 3600).encode()
    right = stripe_v1(secret, ts, body)
    stale = {"right, 301 s old": now - 301, "right, 1 day old": now - 86400, "right, t=0": 0}
    if kind in stale:
        old = str(stale[kind]).encode()
        return b"t=" + old + b",v1=" + stripe_v1(secret, old, body)
    wrong = [b"v1=" + bytes(f"{i:064x}", "ascii") for i in range(500)]
    headers: dict[str, bytes | None] = {
        "right": b"t=" + ts + b",v1=" + right,
        "right, blanks around the parts": b"t=" + ts + b" , v1=" + right + b" ",
        "right among 500 v1": b"t=" + ts + b"," + b",".join([*wrong, b"v1=" + right]),
        "right, future t": b"t=" + later + b",v1=" + stripe_v1(secret, later, body),
        "right among 500 v1, stale": b"t=1,"
        + b",".join([b"v1=" + stripe_v1(secret, b"1", body), *wrong]),
        "missing": None,
        "empty": b"",
        "v1 with a raw 0xFF": b"t=" + ts + b",v1=" + right + b"\xff",
        "v1 in UTF-8 Cyrillic": b"t=" + ts + ",v1=подпись".encode(),
        "t with a raw 0xB2": b"t=" + ts + b"\xb2,v1=" + right,
        "no t": b"v1=" + right,
        "two t": b"t=" + ts + b",t=" + ts + b",v1=" + right,
        "t letters": b"t=now,v1=" + right,
        "t negative": b"t=-" + ts + b",v1=" + right,
        "t 13 digits": b"t=" + b"9" * 13 + b",v1=" + right,
        "t fullwidth digits": b"t=" + "１７".encode() + b",v1=" + right,
        "no v1 (v0 only)": b"t=" + ts + b",v0=" + right,
        "empty v1": b"t=" + ts + b",v1=",
        "v1 zeros": b"t=" + ts + b",v1=" + b"0" * 64,
        "v1 uppercase": b"t=" + ts + b",v1=" + right.upper(),
        "v1 sha256= prefix": b"t=" + ts + b",v1=sha256=" + right,
        "v1 under another secret": b"t=" + ts + b",v1=" + stripe_v1("whsec_other", ts, body),
        "v1 over another body": b"t=" + ts + b",v1=" + stripe_v1(secret, ts, body + b" "),
        "500 wrong v1": b"t=" + ts + b"," + b",".join(wrong),
        "semicolons": b"t=" + ts + b";v1=" + right,
        "64 KB v1": b"t=" + ts + b",v1=" + b"a" * 65536,
        "v1 before t, wrong": b"v1=" + b"f" * 64 + b",t=" + ts,
        "header twice, wrong first": b"t=" + ts + b",v1=" + b"1" * 64,
    }
    return headers[kind]


def event_body(draw: st.DrawFn, focus: str) -> tuple[bytes, str]:
    """An event (or something else) as bytes, and what is odd about it."""
    kind = draw(st.sampled_from(HANDLED + UNHANDLED))
    fields = [
        ("id", text_of(f"evt_fuzz_{draw(st.integers(0, 10**6))}")),
        ("object", '"event"'),
        ("type", text_of(kind)),
        ("created", str(int(time.time()))),
        ("data", obj([("object", obj([("id", '"cus_fuzz"'), ("object", '"customer"')]))])),
    ]
    if focus == "event value":
        where = draw(st.sampled_from(["id", "type", "created", "data.object.email", "x"]))
        value, what = draw(odd_value())
        if where.startswith("data"):
            inner = obj([("object", obj([("id", '"cus_fuzz"'), ("email", value)]))])
            fields = [(k, inner if k == "data" else v) for k, v in fields]
        else:
            fields = [*[(k, v) for k, v in fields if k != where], (where, value)]
        return obj_bytes(fields), f"event {where} = {what}"
    if focus == "event shape":
        name = draw(st.sampled_from(sorted(EVENT_SHAPES)))
        return obj_bytes(EVENT_SHAPES[name]), f"event: {name}"
    if focus == "top level":
        value, what = draw(
            st.sampled_from(sorted(KINDS.items())).map(lambda kv: (kv[1], f"a JSON {kv[0]}"))
            | deep_value()
        )
        return value.encode(), f"body: {what}"
    body = obj_bytes(fields)
    if focus == "corrupted":
        return draw(corrupted(body))
    return body, f"event type {shorten(kind, 30)}"


@st.composite
def webhook_request(draw: st.DrawFn, t: Target) -> BadRequest:
    """A Stripe event to an app: to the configured one never signed so that it applies."""
    segment, key_label, raw_key = draw(app_segment(t, known_share=0.6))
    focus = draw(st.sampled_from(EVENT_FOCUS))
    body, label = event_body(draw, focus)
    if focus == "oversize":
        body, framing = oversize(draw, body, t.saas_max_body)
    else:
        framing = draw(framing_for(body, t.saas_max_body, force=focus == "framing"))
    secrets = t.webhook_secret.split(",")
    secret = draw(st.sampled_from(secrets))
    kind = draw(st.sampled_from(SIGNATURE_KINDS))
    request = build(ROUTE, "Stripe-Signature", label, "POST", b"/webhook/" + segment)
    frame(request, framing, body, t.saas_max_body)
    received = request.received()
    whole = arrives_whole(framing)
    if kind in VALID_KINDS and not (whole and event_refused(received, t)):
        kind = "v1 zeros"  # the body might be an event the api applies
    header = signature_header(kind, secret, received)
    ctype, ctype_label = draw(content_type())
    headers = ctype + draw(noise_headers())
    if header is not None:
        headers = [(b"stripe-signature", header), *headers]
    if kind == "header twice, wrong first":
        headers.append((b"stripe-signature", b"t=1,v1=" + stripe_v1(secret, b"1", received)))
    request.headers = headers
    request.auth = f"Stripe-Signature: {kind}"
    request.label = ", ".join(x for x in (key_label, label, ctype_label, framing.label) if x)
    request.parser_may_refuse = raw_key
    request.must_refuse = True
    if whole and not raw_key and speaks_saasy(request):
        too_big = len(received) > t.saas_max_body
        due = {"the configured app": (400,), "an unknown app": (404,)}.get(key_label, ())
        request.expect = (413,) if too_big else due
    elif framing.kind == "declared" and speaks_saasy(request):
        request.expect = (413,)
    request.detail = (
        f"/webhook/{shorten(segment, 30)} sig={shorten(header or b'-', 40)} {shorten(received, 60)}"
    )
    return request
