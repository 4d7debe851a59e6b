"""Regressions of issue 8's edge defects: non-ASCII digits, values PostgreSQL refuses,
the connection after a 500, the mTLS header, malformed allowlists."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from api import problems
from api.admin import error_pages
from api.crash_guard import CrashGuardMiddleware
from api.security import ascii_int, timestamp_fresh
from cli.processes import free_port
from producers.sender import encode_body, signed_headers
from schemas.settings import Settings
from tests.payloads import batch, entry, signed
from tests.raw_http import RawConnection
from tests.stack import ADMIN_KEY, ADMIN_PIN, SECRET, Stack
from tests.waiting import wait_for

NON_ASCII_DIGITS = ["²", "١٧٦٣٧٠٠٠٠٠", "１７６３７００００００", "٣"]
COUNTED = ("sync_jobs", "sync_payloads", "outbox", "dictionary_entries")


def counts(stack: Stack) -> dict[str, int]:
    return {t: int(stack.scalar(f"SELECT count(*) FROM {t}")) for t in COUNTED}


@pytest.mark.parametrize("value", NON_ASCII_DIGITS)
def test_only_ascii_digits_are_numbers(value: str) -> None:
    assert value.isdigit()  # what the old check trusted
    assert ascii_int(value) is None
    assert not timestamp_fresh(value, time.time(), 300)
    assert ascii_int("0042") == 42
    assert ascii_int("1" * 19) is None


def _signed_headers(request_id: str, timestamp: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-sync-timestamp", timestamp),
        (b"x-sync-request-id", request_id.encode()),
        (b"x-sync-signature", b"sha256=" + b"0" * 64),
        (b"content-type", b"application/json"),
    ]


@pytest.mark.parametrize("timestamp", [b"\xb2", "١٧٦٣٧٠٠٠٠٠".encode(), b"1" * 40])
def test_non_ascii_timestamp_is_a_401_and_the_connection_lives(
    stack: Stack, timestamp: bytes
) -> None:
    before = counts(stack)
    body = encode_body(batch(["digits"], request_id="digits-1"))
    with RawConnection(stack.api_port) as conn:
        push = conn.request(
            "POST",
            b"/api/internal/dictionary-upserts",
            _signed_headers("digits-1", timestamp),
            body,
        )
        status = conn.request(
            "GET",
            b"/api/internal/dictionary-upserts/status?requestId=digits-1",
            _signed_headers("digits-1", timestamp),
        )
        health = conn.request("GET", b"/healthz", [])
    assert push.status == 401, push.body
    assert "x-sync-timestamp" in str(push.json())
    assert status.status == 401, status.body
    assert health.status == 200
    assert counts(stack) == before


@pytest.mark.parametrize("value", [b"\xb2", "٣".encode(), b"-1", b"9" * 30, b"abc"])
def test_last_event_id_that_is_no_event_id_is_a_400(stack: Stack, value: bytes) -> None:
    with stack.client() as client:
        created = client.post("/v1/syncs", json={"domain": "dictionary", "payload": batch()})
    job_id = created.json()["id"]
    auth = [(b"authorization", f"Bearer {ADMIN_KEY}".encode())]
    with RawConnection(stack.api_port) as conn:
        answer = conn.request(
            "GET", f"/v1/syncs/{job_id}/events".encode(), [*auth, (b"last-event-id", value)]
        )
        health = conn.request("GET", b"/healthz", [])
    assert answer.status == 400, answer.body
    assert "Last-Event-ID" in str(answer.json())
    assert health.status == 200
    # Leave nothing in flight on the shared stack: later tests count its rows.
    finished = "SELECT status IN ('succeeded', 'failed') FROM sync_jobs WHERE id = %s"
    wait_for(lambda: stack.scalar(finished, (job_id,)), what="the job to finish")


def _push(stack: Stack, text: str, request_id: str) -> httpx.Response:
    body = text.encode()
    headers = signed_headers(SECRET, request_id, body)
    return httpx.post(stack.push_url, content=body, headers=headers, timeout=30)


@pytest.mark.parametrize(
    ("label", "entries_json", "reason"),
    [
        ("huge exponent", '[{"en": "x", "ru": "y", "frequencyRank": 1e1000000}]', "out of"),
        ("tiny exponent", '[{"en": "x", "ru": "y", "frequencyRank": 1e-1000000}]', "out of"),
        ("deep nesting", "[" * 20_000 + "]" * 20_000, "nested too deeply"),
        ("NUL escape", '[{"en": "x\\u0000", "ru": "y"}]', "Unicode"),
    ],
)
def test_signed_push_postgres_refuses_is_a_400(
    stack: Stack, label: str, entries_json: str, reason: str
) -> None:
    before = counts(stack)
    request_id = f"refused-{uuid.uuid4()}"
    header = batch(request_id=request_id)
    del header["entries"]
    text = encode_body(header).decode()[:-1] + ',"entries":' + entries_json + "}"
    response = _push(stack, text, request_id)
    assert response.status_code == 400, (label, response.text)
    assert reason in response.json()["detail"]
    assert counts(stack) == before


def _deep(levels: int) -> bytes:
    """``{"x": {"x": ... 1}}`` nested ``levels`` deep (orjson itself stops at 255)."""
    return b'{"x": ' * levels + b"1" + b"}" * levels


@pytest.mark.parametrize(
    ("label", "body", "where"),
    [
        ("inf", b'{"domain": "models", "params": {"x": 1e400}}', "params"),
        ("-inf", b'{"domain": "models", "params": {"x": -1e400}}', "params"),
        ("2^64", b'{"domain": "models", "params": {"x": 18446744073709551616}}', "params"),
        ("-2^63-1", b'{"domain": "models", "params": {"x": -9223372036854775809}}', "params"),
        ("256 levels", b'{"domain": "models", "params": ' + _deep(256) + b"}", "params"),
        ("65 levels", b'{"domain": "models", "params": ' + _deep(65) + b"}", "params"),
        ("3000 levels", b'{"domain": "models", "params": ' + _deep(3000) + b"}", ""),
        ("NUL", b'{"domain": "models", "params": {"x": "a\\u0000b"}}', "NUL"),
        ("NUL key", b'{"domain": "models", "params": {"a\\u0000": 1}}', "NUL"),
        ("surrogate", b'{"domain": "models", "params": {"x": "\\ud800"}}', "surrogate"),
        ("NUL scope", b'{"domain": "models", "scope": "a\\u0000"}', "NUL"),
        ("control id", b'{"domain": "models", "request_id": "a\\nb"}', "control"),
        (
            "payload inf",  # orjson would quietly have stored null
            b'{"domain": "dictionary", "payload": {"source": "s", "lang": "en", '
            b'"entries": [{"en": "w", "ru": "r", "x": 1e999}]}}',
            "payload",
        ),
        ("huge digits", b'{"domain": "models", "params": {"x": ' + b"9" * 5000 + b"}}", ""),
    ],
)
def test_v1_values_postgres_refuses_are_4xx(
    stack: Stack, label: str, body: bytes, where: str
) -> None:
    before = counts(stack)
    with stack.client() as client:
        response = client.post(
            "/v1/syncs", content=body, headers={"content-type": "application/json"}
        )
        after = client.get("/healthz")
    assert response.status_code in (400, 422), (label, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    assert where in response.text
    assert after.status_code == 200
    assert counts(stack) == before


def test_list_filter_with_nul_is_a_422(stack: Stack) -> None:
    with stack.client() as client:
        response = client.get("/v1/syncs", params={"domain": "a\x00b"})
        status = client.get(
            "/api/internal/dictionary-upserts/status",
            params={"requestId": "a\x00b"},
            headers={"X-Admin-PIN": ADMIN_PIN},
        )
    assert response.status_code == 422, response.text
    assert status.status_code == 422, status.text


@pytest.fixture
def crashing_server() -> Iterator[int]:
    """A real uvicorn serving an app whose route fails unexpectedly, with our error stack."""
    app = FastAPI()
    problems.install(app)
    app.add_middleware(CrashGuardMiddleware, page=error_pages.crash_page)

    @app.get("/boom")
    @app.get("/admin/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    @app.get("/fine")
    async def fine() -> dict[str, str]:
        return {"status": "ok"}

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", http="httptools")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="uvicorn")
    yield port
    server.should_exit = True
    thread.join(10)


def test_after_a_500_the_keep_alive_connection_serves_the_next_request(
    crashing_server: int,
) -> None:
    with RawConnection(crashing_server) as conn:
        crashed = conn.request("GET", b"/boom", [])
        again = conn.request("GET", b"/boom", [])
        fine = conn.request("GET", b"/fine", [])
    assert crashed.status == 500
    assert crashed.header("content-type") == "application/problem+json"
    assert crashed.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "Internal server error",
    }
    assert again.status == 500
    assert fine.status == 200


def test_a_500_on_an_admin_page_is_a_page(crashing_server: int) -> None:
    with RawConnection(crashing_server) as conn:
        crashed = conn.request("GET", b"/admin/boom", [])
        fine = conn.request("GET", b"/fine", [])
    assert crashed.status == 500
    assert crashed.header("content-type") == "text/html; charset=utf-8"
    assert (crashed.header("content-security-policy") or "").startswith("default-src 'self'")
    assert crashed.header("x-frame-options") == "DENY"
    assert b"<main" in crashed.body and b"Internal server error" in crashed.body
    assert b"a bug" not in crashed.body
    assert fine.status == 200


def test_mtls_header_counts_only_from_a_trusted_proxy(isolated_stack: Stack) -> None:
    stack = isolated_stack
    stack.env_overrides.update(
        {"INTERNAL_SYNC_ALLOWED_IPS": "127.0.0.1", "INTERNAL_SYNC_REQUIRE_MTLS": "true"}
    )
    stack.start_api()
    payload = batch(["mtls-direct"])
    body, headers = signed(payload, SECRET)
    response = httpx.post(
        stack.push_url, content=body, headers={**headers, "x-internal-mtls-verified": "1"}
    )
    assert response.status_code == 403, response.text
    assert "INTERNAL_SYNC_TRUSTED_PROXIES" in response.json()["detail"]
    assert stack.scalar("SELECT count(*) FROM sync_jobs") == 0


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("INTERNAL_SYNC_ALLOWED_IPS", "127.0.0.1,203.0.113.10/8", "'203.0.113.10/8'"),
        ("INTERNAL_SYNC_ALLOWED_IPS", "localhost", "'localhost'"),
        ("INTERNAL_SYNC_TRUSTED_PROXIES", "10.0.0.1/33", "'10.0.0.1/33'"),
    ],
)
def test_malformed_network_entries_are_refused_by_name(
    variable: str, value: str, named: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings.model_validate({variable: value})
    message = str(refused.value)
    assert variable in message and named in message


def test_null_in_every_optional_entry_field_is_accepted(stack: Stack) -> None:
    optional = ["level", "register", "accent", "frequencyRank", "rarity", "ipaUk", "ipaUs"]
    optional += ["example", "exampleRu"]
    word = f"nullable-{uuid.uuid4().hex[:8]}"
    payload = batch(entries=[entry(word, **dict.fromkeys(optional))])
    body, headers = signed(payload, SECRET)
    response = httpx.post(stack.push_url, content=body, headers=headers, timeout=30)
    assert response.status_code == 202, response.text
    request_id = payload["requestId"]

    def final() -> tuple[Any, ...] | None:
        rows = stack.query(
            "SELECT status, error_message FROM sync_jobs WHERE request_id = %s", (request_id,)
        )
        return rows[0] if rows and rows[0][0] in ("succeeded", "failed") else None

    status, error = wait_for(final, what="the null batch")
    assert (status, error) == ("succeeded", None)
    stored = stack.query(
        "SELECT ru, level, frequency_rank FROM dictionary_entries WHERE word = %s", (word,)
    )
    assert stored == [("привет", None, None)]
