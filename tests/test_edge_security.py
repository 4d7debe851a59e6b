"""Seed 004's edge: signature compatible with a Node sender, IP allowlist, proxies, mTLS header."""

from __future__ import annotations

import datetime
import json
import time

import httpx
import pytest

from api.security import client_address, in_networks, timestamp_fresh
from producers.sender import encode_body, signed_headers
from schemas.signing import (
    EMPTY_BODY_SHA256,
    body_sha256,
    push_signature,
    secret_matches,
    verify_push_signature,
)
from tests.payloads import batch
from tests.stack import SECRET, Stack

# Produced by Node.js, the way seed 004's sender does it (JSON.stringify + crypto.createHmac).
NODE_PAYLOAD = {
    "requestId": "uuid-or-stable-idempotency-key",
    "source": "de-ai-worker",
    "payloadVersion": "1",
    "lang": "en",
    "actorUsername": "admin_username",
    "entries": [
        {"en": "hello", "ru": "привет", "level": "A0", "frequencyRank": 1200, "ipaUk": "həˈləʊ"}
    ],
}
NODE_BODY_SHA256 = "91a40a6276ff8af36d07e7db44959f4da0df558796ef22521ad4beb70befecce"
NODE_SIGNATURE = "sha256=27c681ad8711f3b737f269791c0eaf516bd844e7c7d60b0bb9f81c73848f49c8"


def test_a_batch_is_sent_as_compact_utf8_json() -> None:
    payload = {
        "lang": "ru",
        "entries": [
            {"ru": 'при\u2028вет "ё" \\ \t\x7f', "frequencyRank": 12, "ipaUk": None},
            {"ru": "😀", "extra": {"nested": [True, False, 2.5]}},
        ],
    }
    expected = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    assert encode_body(payload) == expected


def test_an_integer_past_64_bits_is_still_sent() -> None:
    assert encode_body({"rank": 2**64}) == b'{"rank":18446744073709551616}'


def test_nan_and_infinity_are_sent_as_null_as_javascript_does() -> None:
    assert encode_body({"a": float("nan"), "b": [float("inf")]}) == b'{"a":null,"b":[null]}'
    past_64_bits = {"a": float("-inf"), "b": [float("nan")], "c": 2**64}
    assert encode_body(past_64_bits) == b'{"a":null,"b":[null],"c":18446744073709551616}'


def test_a_value_json_has_no_type_for_is_refused() -> None:
    with pytest.raises(TypeError):
        encode_body({"when": datetime.date(2026, 1, 1)})


def test_signature_matches_a_node_sender() -> None:
    body = encode_body(NODE_PAYLOAD)
    assert body_sha256(body) == NODE_BODY_SHA256
    signature = push_signature(
        "change_me_long_random_secret", "1763700000", "uuid-or-stable-idempotency-key", body
    )
    assert signature == NODE_SIGNATURE


def test_verification_accepts_any_active_secret_and_nothing_else() -> None:
    body = b'{"a":1}'
    good = push_signature("new", "1", "r", body)
    digest = body_sha256(body)
    assert verify_push_signature(["old", "new"], "1", "r", digest, good)
    assert not verify_push_signature(["old"], "1", "r", digest, good)
    assert not verify_push_signature(["new"], "1", "r", body_sha256(body + b" "), good)
    assert not verify_push_signature(["new"], "2", "r", digest, good)
    assert not verify_push_signature([], "1", "r", digest, good)
    assert body_sha256(b"") == EMPTY_BODY_SHA256
    assert secret_matches(["a", "b"], "b") and not secret_matches(["a"], "")


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("198.51.100.7", None, [], "198.51.100.7"),
        ("198.51.100.7", "203.0.113.10", [], "198.51.100.7"),  # untrusted peer: header ignored
        ("10.0.0.2", "203.0.113.10", ["10.0.0.0/8"], "203.0.113.10"),
        ("10.0.0.2", "203.0.113.10, 10.0.0.9", ["10.0.0.0/8"], "203.0.113.10"),
        ("10.0.0.2", "203.0.113.10, 198.51.100.7", ["10.0.0.0/8"], "198.51.100.7"),
        ("10.0.0.2", "not-an-ip", ["10.0.0.0/8"], None),
        ("::ffff:203.0.113.10", None, [], "::ffff:203.0.113.10"),
    ],
)
def test_client_address(
    peer: str, forwarded: str | None, trusted: list[str], expected: str | None
) -> None:
    assert client_address(peer, forwarded, trusted) == expected


def test_allowlist_takes_addresses_and_ranges() -> None:
    allow = ["203.0.113.10", "10.1.0.0/16", "2001:db8::/32"]
    assert in_networks("203.0.113.10", allow)
    assert in_networks("::ffff:203.0.113.10", allow)
    assert in_networks("10.1.200.3", allow)
    assert in_networks("2001:db8::1", allow)
    assert not in_networks("203.0.113.11", allow)
    assert not in_networks(None, allow)
    assert not in_networks("garbage", allow)


def test_timestamp_window() -> None:
    now = 1_763_700_000.0
    assert timestamp_fresh("1763700000", now, 300)
    assert timestamp_fresh("1763699700", now, 300)
    assert not timestamp_fresh("1763699699", now, 300)
    assert not timestamp_fresh("1763700301", now, 300)
    for bad in ("", "-5", "1.5", "1763700000000000", "abc"):
        assert not timestamp_fresh(bad, now, 300)


def post(stack: Stack, headers: dict[str, str]) -> httpx.Response:
    payload = batch(["guarded"])
    body = encode_body(payload)
    signed = signed_headers(SECRET, payload["requestId"], body)
    return httpx.post(stack.push_url, content=body, headers={**signed, **headers})


def test_allowlist_behind_a_trusted_proxy_with_mtls_required(isolated_stack: Stack) -> None:
    stack = isolated_stack
    stack.env_overrides.update(
        {
            "INTERNAL_SYNC_ALLOWED_IPS": "203.0.113.0/24",
            "INTERNAL_SYNC_TRUSTED_PROXIES": "127.0.0.1",
            "INTERNAL_SYNC_REQUIRE_MTLS": "true",
        }
    )
    stack.start_api()
    mtls = {"x-internal-mtls-verified": "1"}

    direct = post(stack, mtls)
    allowed = post(stack, {"x-forwarded-for": "203.0.113.10", **mtls})
    outsider = post(stack, {"x-forwarded-for": "198.51.100.7", **mtls})
    spoofed = post(stack, {"x-forwarded-for": "203.0.113.10, 198.51.100.7", **mtls})
    no_mtls = post(stack, {"x-forwarded-for": "203.0.113.10"})

    assert direct.status_code == 403, direct.text  # the proxy itself is not a sender
    assert allowed.status_code == 202, allowed.text
    assert outsider.status_code == 403
    assert "198.51.100.7" in outsider.json()["detail"]
    assert spoofed.status_code == 403  # the proxy appended the real peer on the right
    assert no_mtls.status_code == 403
    assert "x-internal-mtls-verified" in no_mtls.json()["detail"]
    assert stack.scalar("SELECT count(*) FROM sync_jobs") == 1


def test_forwarded_header_is_ignored_without_trusted_proxies(isolated_stack: Stack) -> None:
    stack = isolated_stack
    stack.env_overrides["INTERNAL_SYNC_ALLOWED_IPS"] = "203.0.113.10"
    stack.start_api()
    response = post(stack, {"x-forwarded-for": "203.0.113.10"})
    assert response.status_code == 403
    assert stack.scalar("SELECT count(*) FROM sync_jobs") == 0


def test_unsigned_mode_when_signatures_are_switched_off(isolated_stack: Stack) -> None:
    stack = isolated_stack
    stack.env_overrides["INTERNAL_SYNC_REQUIRE_SIGNATURE"] = "false"
    stack.start_api()
    payload = batch(["unsigned"])
    response = httpx.post(stack.push_url, content=encode_body(payload))
    assert response.status_code == 202, response.text


def test_timestamp_skew_is_configurable(isolated_stack: Stack) -> None:
    stack = isolated_stack
    stack.env_overrides["INTERNAL_SYNC_ALLOWED_SKEW_SECONDS"] = "5"
    stack.start_api()
    payload = batch(["skewed"])
    body = encode_body(payload)
    ts = str(int(time.time()) - 30)
    headers = {
        "x-sync-timestamp": ts,
        "x-sync-request-id": payload["requestId"],
        "x-sync-signature": push_signature(SECRET, ts, payload["requestId"], body),
    }
    response = httpx.post(stack.push_url, content=body, headers=headers)
    assert response.status_code == 401
    assert "5s" in response.json()["detail"]
