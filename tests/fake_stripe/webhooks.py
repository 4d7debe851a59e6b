"""Stripe-signed webhook deliveries: the exact body bytes and their ``Stripe-Signature`` header."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from typing import Any

# Test-mode deliveries also carry a v0 signature made with a key the receiver never has.
_FAKE_V0_KEY = b"fake-stripe-v0"


def compute_signature(body: bytes, secret: str, timestamp: int) -> str:
    """Stripe's v1 scheme: HMAC-SHA256 hex of ``"{t}.{body}"``, keyed with the whole secret
    string (``whsec_`` included, not base64-decoded)."""
    payload = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()


def stripe_signature(
    body: bytes, secret: str, timestamp: int, extra_secrets: Sequence[str] = ()
) -> str:
    """``t=...,v1=...[,v1=...],v0=...``: one v1 per secret (as while a rolled secret is still
    active), then a fake v0 as in test mode."""
    v1 = [compute_signature(body, s, timestamp) for s in (secret, *extra_secrets)]
    v0 = hmac.new(_FAKE_V0_KEY, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return ",".join([f"t={timestamp}", *(f"v1={sig}" for sig in v1), f"v0={v0}"])


def signed_webhook(
    event: dict[str, Any],
    secret: str,
    timestamp: int | None = None,
    extra_secrets: Sequence[str] = (),
) -> tuple[bytes, dict[str, str]]:
    """The body Stripe would POST for ``event`` (JSON indented by two spaces, as Stripe sends it)
    and its headers. ``timestamp`` defaults to the real clock, which receivers check against."""
    body = json.dumps(event, indent=2).encode()
    when = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": stripe_signature(body, secret, when, extra_secrets),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    return body, headers
