"""Credentials right and wrong: the admin key and PIN, the sender's timestamps and signatures."""

from __future__ import annotations

import base64
import functools
import hmac
import time
from dataclasses import dataclass
from hashlib import sha256

from hypothesis import strategies as st

from schemas.signing import EMPTY_BODY_SHA256
from tests.bad_input.request import Target
from tests.raw_http import Headers

ADMIN_OK = ("admin key", "admin key, lowercase scheme", "admin PIN", "admin key and a wrong PIN")
ADMIN_BAD = (
    "none",
    "wrong key",
    "wrong PIN",
    "Basic scheme",
    "empty Bearer",
    "key with non-ASCII bytes",
    "PIN with non-ASCII bytes",
    "8 KB key",
    "two Authorization headers, wrong first",
)


def admin_headers(t: Target, kind: str) -> Headers:
    """The headers of one of ADMIN_OK or ADMIN_BAD."""
    key = t.admin_key.encode()
    pin = t.admin_pin.encode()
    return {
        "admin key": [(b"authorization", b"Bearer " + key)],
        "admin key, lowercase scheme": [(b"authorization", b"bearer  " + key + b" ")],
        "admin PIN": [(b"x-admin-pin", pin)],
        "admin key and a wrong PIN": [(b"authorization", b"Bearer " + key), (b"x-admin-pin", b"0")],
        "none": [],
        "wrong key": [(b"authorization", b"Bearer " + key + b"x")],
        "wrong PIN": [(b"x-admin-pin", pin + b"0")],
        "Basic scheme": [(b"authorization", b"Basic " + base64.b64encode(b"admin:" + key))],
        "empty Bearer": [(b"authorization", b"Bearer")],
        "key with non-ASCII bytes": [(b"authorization", b"Bearer " + key + b"\xff\xb2")],
        "PIN with non-ASCII bytes": [(b"x-admin-pin", b"\xb2" + pin)],
        "8 KB key": [(b"authorization", b"Bearer " + b"k" * 8192)],
        "two Authorization headers, wrong first": [
            (b"authorization", b"Bearer nope"),
            (b"authorization", b"Bearer " + key),
        ],
    }[kind]


@functools.cache
@st.composite
def admin_auth(draw: st.DrawFn, t: Target, ok_share: float = 0.6) -> tuple[str, Headers, bool]:
    """(label, headers, authenticated)."""
    ok = draw(st.floats(0, 1)) < ok_share
    kind = draw(st.sampled_from(ADMIN_OK if ok else ADMIN_BAD))
    return kind, admin_headers(t, kind), ok


def server_view(value: bytes) -> str:
    """A header value as the api reads it (latin-1, surrounding blanks stripped)."""
    return value.strip(b" \t").decode("latin-1")


def sign(secret: str, timestamp: bytes, request_id: bytes, body_hash: str) -> bytes:
    """The sender's x-sync-signature over what the api will read of these headers."""
    message = f"{server_view(timestamp)}.{server_view(request_id)}.{body_hash}".encode()
    return b"sha256=" + hmac.new(secret.encode(), message, sha256).hexdigest().encode()


def now_ts() -> bytes:
    return str(int(time.time())).encode()


def bad_timestamps() -> dict[str, bytes]:
    now = int(time.time())
    return {
        "expired by 1 hour": str(now - 3600).encode(),
        "expired by 10 years": str(now - 315_360_000).encode(),
        "in the future by 1 hour": str(now + 3600).encode(),
        "year 9999": b"253402300799",
        "zero": b"0",
        "negative": b"-" + now_ts(),
        "fractional": now_ts() + b".5",
        "milliseconds": now_ts() + b"000",
        "30 digits": b"1" * 30,
        "5000 digits": b"9" * 5000,
        "above 2^64": str(2**64 + 7).encode(),
        "raw byte 0xB2 (²)": b"\xb2",
        "digits with a raw 0xB2/0xB3/0xB9": now_ts()[:-1] + b"\xb2",
        "raw 0xB9 0xB2 0xB3 (¹²³)": b"\xb9\xb2\xb3",
        "Arabic-Indic digits (UTF-8)": "١٧٦٣٧٠٠٠٠٠".encode(),
        "fullwidth digits (UTF-8)": "１７６３７００００００".encode(),
        "superscript digits (UTF-8)": "¹⁷⁶³".encode(),
        "hex": hex(now).encode(),
        "exponent": b"1.7e9",
        "NaN": b"NaN",
        "plus sign": b"+" + now_ts(),
        "trailing NBSP byte 0xA0": now_ts() + b"\xa0",
        "ISO date": b"2026-11-30T00:00:00Z",
        "letters": b"yesterday",
    }


def pick_bad_timestamp(draw: st.DrawFn) -> tuple[str, bytes]:
    """(label, x-sync-timestamp) for one of bad_timestamps()."""
    timestamps = bad_timestamps()
    name = draw(st.sampled_from(sorted(timestamps)))
    return name, timestamps[name]


BAD_SIGNATURES = (
    "zeros",
    "uppercase hex",
    "no sha256= prefix",
    "empty digest",
    "trailing raw byte 0xFF",
    "raw 0xB2 bytes",
    "10 KB",
    "wrong secret",
    "signed over another body",
    "sha512= prefix",
)


def wrong_signature(kind: str, good: bytes, timestamp: bytes, request_id: bytes) -> bytes:
    """The signature of one of BAD_SIGNATURES, ``good`` being the right one."""
    if kind == "zeros":
        return b"sha256=" + b"0" * 64
    if kind == "uppercase hex":
        return b"sha256=" + good[7:].upper()
    if kind == "no sha256= prefix":
        return good[7:]
    if kind == "empty digest":
        return b"sha256="
    if kind == "trailing raw byte 0xFF":
        return good + b"\xff"
    if kind == "raw 0xB2 bytes":
        return b"sha256=" + b"\xb2" * 64
    if kind == "10 KB":
        return b"sha256=" + b"a" * 10240
    if kind == "wrong secret":
        return sign("not-the-secret", timestamp, request_id, EMPTY_BODY_SHA256)
    if kind == "signed over another body":
        return sign("x", timestamp, request_id, sha256(b"{}").hexdigest())
    return b"sha512=" + good[7:]


def signature_headers(
    secret: str, timestamp: bytes, request_id: bytes, body_hash: str, flaw: str = ""
) -> Headers:
    """The sender's three signature headers; with ``flaw`` (one of BAD_SIGNATURES) the
    signature is wrong in that way."""
    signature = sign(secret, timestamp, request_id, body_hash)
    if flaw:
        signature = wrong_signature(flaw, signature, timestamp, request_id)
    return [
        (b"x-sync-timestamp", timestamp),
        (b"x-sync-request-id", request_id),
        (b"x-sync-signature", signature),
    ]


@dataclass(frozen=True)
class SigningFlaw:
    """What the sender's signature headers get wrong, if anything."""

    timestamp: bytes
    bad_signature: str = ""  # one of BAD_SIGNATURES, or ''
    auth: str = "signed"
    label: str = ""  # '' when nothing is wrong


def signing_flaw(draw: st.DrawFn, wrong: str) -> SigningFlaw:
    """A bad timestamp or a bad signature when ``wrong`` says so, else nothing wrong."""
    if wrong == "bad timestamp":
        name, timestamp = pick_bad_timestamp(draw)
        return SigningFlaw(timestamp, "", "signed, bad timestamp", f"x-sync-timestamp: {name}")
    if wrong == "bad signature":
        flaw = draw(st.sampled_from(BAD_SIGNATURES))
        return SigningFlaw(now_ts(), flaw, "bad signature", f"x-sync-signature: {flaw}")
    return SigningFlaw(now_ts())
