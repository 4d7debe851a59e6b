"""HMAC signatures of seed 004 (dictionary push) and seed 000 (sync-models); pure functions."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import orjson

EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()


def canonical_sha256(value: object) -> str:
    """Fingerprint of a JSON value regardless of key order and whitespace."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def body_sha256(body: bytes) -> str:
    """Hex sha256 of the exact body bytes (what a Node sender gets from JSON.stringify)."""
    return hashlib.sha256(body).hexdigest()


def push_signature(secret: str, timestamp: str, request_id: str, body: bytes) -> str:
    """``sha256=<hex>`` over ``${timestamp}.${requestId}.${sha256(body)}``."""
    return _signature(secret, timestamp, request_id, body_sha256(body))


def _signature(secret: str, timestamp: str, request_id: str, body_hash: str) -> str:
    message = f"{timestamp}.{request_id}.{body_hash}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_push_signature(
    secrets: Iterable[str], timestamp: str, request_id: str, body_hash: str, presented: str
) -> bool:
    """True when ``presented`` matches the signature, under any active secret, of a body whose
    hex sha256 is ``body_hash`` (constant-time comparison)."""
    matched = False
    for secret in secrets:
        expected = _signature(secret, timestamp, request_id, body_hash)
        # Compare against every secret so timing does not reveal which one matched.
        matched |= hmac.compare_digest(expected.encode(), presented.encode())
    return matched


def body_hmac_hex(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the body (seed 000's ``X-Signature``)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def secret_matches(candidates: Iterable[str], presented: str) -> bool:
    """Constant-time check of a presented secret against every configured one."""
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(candidate.encode(), presented.encode())
    return matched


# Stripe's own libraries default to five minutes (stripe-python Webhook.DEFAULT_TOLERANCE).
STRIPE_TOLERANCE_S = 300


def stripe_signature_problem(
    header: str | None, body: bytes, secrets: Iterable[str], now: float
) -> str | None:
    """Why a ``Stripe-Signature`` does not vouch for ``body``, or None when it does.

    As Stripe documents and stripe-python's ``Webhook.construct_event`` does: the header is
    ``t=<unix seconds>,v1=<hex>[,v1=...][,v0=...]``; only ``v1`` counts (one per active
    secret during a rotation); each is the hex HMAC-SHA256 of ``f"{t}.{body}"`` keyed with
    the secret as is (``whsec_`` included), compared in constant time; the signature is
    checked before the timestamp, which may be at most ``STRIPE_TOLERANCE_S`` old.
    """
    if not header or not header.isascii():
        return "missing or malformed Stripe-Signature header"
    pairs = [item.split("=", 1) for item in header.split(",") if "=" in item]
    timestamps = [v.strip() for k, v in pairs if k.strip() == "t"]
    presented = [v.strip() for k, v in pairs if k.strip() == "v1"]
    if len(timestamps) != 1 or not timestamps[0].isdigit() or len(timestamps[0]) > 12:
        return "Unable to extract timestamp and signatures from header"
    if not presented:
        return "No signatures found with expected scheme v1"
    signed = timestamps[0].encode() + b"." + body
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest().encode()
        for candidate in presented:
            matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        return "No signatures found matching the expected signature for payload"
    if int(timestamps[0]) < now - STRIPE_TOLERANCE_S:
        return "Timestamp outside the tolerance zone"
    return None
