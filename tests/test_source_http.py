"""The shared source client and token bucket against a real local HTTP server with a script."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from cli.processes import free_port
from streams.sources.http import (
    FatalResponseError,
    JsonResponse,
    MalformedResponseError,
    Params,
    RetriesExhaustedError,
    SkippableResponseError,
    SourceClient,
)
from streams.sources.ratelimit import TokenBucket, TokenBuckets, account_key
from streams.sources.retry import (
    STRIPE_RESPONSES,
    ResponseAction,
    ResponseClassifier,
    RetryPolicy,
)

STRIPE_KEY = "sk_test_51Qx7secretKEYvalue0123456789"
OK_BODY = {"object": "list", "data": [], "has_more": False}


@dataclass(frozen=True)
class Answer:
    """One scripted answer; ``hold`` never answers (until the server stops)."""

    status: int = 200
    body: Any = field(default_factory=lambda: OK_BODY)
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    echo_credentials: bool = False
    hold: bool = False


@dataclass(frozen=True)
class Arrival:
    """A request as it arrived; ``at`` is ``time.monotonic()``."""

    at: float
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Tests read ``ScriptedServer.arrivals()``."""

    def do_GET(self) -> None:
        self.server.scripted.answer(self)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    scripted: ScriptedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up on a held answer is expected."""


class ScriptedServer:
    """127.0.0.1: each GET gets the next scripted ``Answer``, then 200 with an empty list."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: deque[Answer] = deque()
        self._arrivals: list[Arrival] = []
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.scripted = self
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.url = f"{self.base_url}/v1/customers"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._script.extend(answers)

    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals)

    def answer(self, handler: _Handler) -> None:
        parts = urlsplit(handler.path)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        arrival = Arrival(time.monotonic(), parts.path, parse_qs(parts.query), headers)
        with self._lock:
            self._arrivals.append(arrival)
            answer = self._script.popleft() if self._script else Answer()
        if answer.hold:
            self._stopping.wait(30)
            handler.close_connection = True
            return
        body = answer.raw
        if body is None:
            document = answer.body
            if answer.echo_credentials:
                document = {"error": {"message": f"Invalid API Key provided: {STRIPE_KEY}"}}
                document["seen"] = {k: v for k, v in headers.items() if k != "host"}
            body = json.dumps(document, separators=(",", ":")).encode()
        handler.send_response(answer.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    running = ScriptedServer().start()
    yield running
    running.stop()


def fetch(
    url: str,
    *,
    retry: RetryPolicy | None = None,
    classifier: ResponseClassifier | None = None,
    params: Params | None = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = 2.0,
) -> JsonResponse:
    async def run() -> JsonResponse:
        async with httpx.AsyncClient(timeout=5) as http:
            client = SourceClient(
                http,
                timeout_s=timeout_s,
                retry=retry or RetryPolicy(attempts=4, backoff_s=0.01, max_wait_s=2.0),
                classifier=classifier,
            )
            return await client.get_json(url, label="customers", params=params, headers=headers)

    return asyncio.run(run())


def gaps(server: ScriptedServer) -> list[float]:
    times = [arrival.at for arrival in server.arrivals()]
    return [later - earlier for earlier, later in pairwise(times)]


def test_a_429_waits_as_long_as_retry_after_says(server: ScriptedServer) -> None:
    server.script(Answer(429, headers={"Retry-After": "0.4"}))

    response = fetch(server.url)

    assert (response.document, response.attempts) == (OK_BODY, 2)
    [gap] = gaps(server)
    assert 0.38 <= gap < 2  # the backoff alone would be 0.01 s


def test_an_exhausted_legacy_ratelimit_is_waited_out(server: ScriptedServer) -> None:
    server.script(Answer(503, headers={"RateLimit-Remaining": "0", "RateLimit-Reset": "0.4"}))

    assert fetch(server.url).attempts == 2
    [gap] = gaps(server)
    assert 0.38 <= gap < 2


def test_5xx_is_retried_with_growing_backoff_until_it_passes(server: ScriptedServer) -> None:
    server.script(Answer(502), Answer(503))

    response = fetch(server.url, retry=RetryPolicy(attempts=4, backoff_s=0.1, jitter=0))

    assert (response.document, response.attempts, len(server.arrivals())) == (OK_BODY, 3, 3)
    first, second = gaps(server)
    assert 0.09 <= first < 0.19 <= second < 1


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (409, {"Stripe-Should-Retry": "true"}),
        (400, {"Stripe-Should-Retry": "true"}),
        (409, {}),  # stripe-python retries a 409 without the header too
    ],
)
def test_stripe_says_when_a_failure_is_worth_retrying(
    server: ScriptedServer, status: int, headers: dict[str, str]
) -> None:
    server.script(Answer(status, {"error": {"type": "idempotency_error"}}, headers))

    assert fetch(server.url, classifier=STRIPE_RESPONSES).attempts == 2
    assert len(server.arrivals()) == 2


@pytest.mark.parametrize("status", [429, 503])
def test_stripe_should_retry_false_fails_at_once(server: ScriptedServer, status: int) -> None:
    body = {"error": {"code": "lock_timeout"}}
    server.script(Answer(status, body, {"Stripe-Should-Retry": "false", "Retry-After": "0"}))

    with pytest.raises(FatalResponseError) as failure:
        fetch(server.url, classifier=STRIPE_RESPONSES)

    reason = "rate limited; " if status == 429 else ""
    assert str(failure.value) == (
        f"customers: HTTP {status} ({reason}Stripe-Should-Retry: false):"
        ' {"error":{"code":"lock_timeout"}}'
    )
    assert failure.value.status == status
    assert len(server.arrivals()) == 1


def test_an_exhausted_budget_fails_with_one_clear_line(server: ScriptedServer) -> None:
    server.script(*[Answer(429, {"error": "slow down"})] * 4)

    with pytest.raises(RetriesExhaustedError) as failure:
        fetch(server.url, classifier=STRIPE_RESPONSES)

    assert str(failure.value) == "customers: HTTP 429 (rate limited) after 4 attempts"
    assert (failure.value.attempts, failure.value.status) == (4, 429)
    assert len(server.arrivals()) == 4


def test_a_wait_beyond_the_cap_is_named_with_its_setting(server: ScriptedServer) -> None:
    server.script(*[Answer(503, headers={"Retry-After": "3600"})] * 2)
    retry = RetryPolicy(attempts=2, max_wait_s=0.05, max_wait_name="SAAS_MAX_RETRY_WAIT_S")

    with pytest.raises(RetriesExhaustedError) as failure:
        fetch(server.url, retry=retry)

    assert str(failure.value) == (
        "customers: HTTP 503 after 2 attempts (the server asked to wait 3600s;"
        " waits are capped at SAAS_MAX_RETRY_WAIT_S=0.05s)"
    )
    [gap] = gaps(server)
    assert 0.04 <= gap < 1


@pytest.mark.parametrize(
    "credential",
    [
        {"Authorization": f"Bearer {STRIPE_KEY}"},
        {"Authorization": "Basic " + base64.b64encode(f"{STRIPE_KEY}:".encode()).decode()},
        {"X-Api-Key": STRIPE_KEY},
    ],
)
def test_no_secret_reaches_a_message_or_the_log(
    server: ScriptedServer, credential: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    server.script(Answer(503, echo_credentials=True), Answer(401, echo_credentials=True))

    with caplog.at_level(logging.DEBUG), pytest.raises(FatalResponseError) as failure:
        fetch(server.url, headers=credential)

    message = str(failure.value)
    assert message.startswith("customers: HTTP 401: ")
    assert "[redacted]" in message
    assert "Invalid API Key provided" in message
    for secret in (STRIPE_KEY, *credential.values()):
        assert secret not in message
        assert secret not in caplog.text
    assert "customers: HTTP 503 on attempt 1 of 4" in caplog.text


def test_query_pairs_carry_stripe_form_encoding(server: ScriptedServer) -> None:
    fetch(
        server.url,
        params=[
            ("limit", 100),
            ("created[gte]", 1704067200),
            ("types[]", "customer.created"),
            ("types[]", "customer.deleted"),
        ],
    )

    assert server.arrivals()[0].query == {
        "limit": ["100"],
        "created[gte]": ["1704067200"],
        "types[]": ["customer.created", "customer.deleted"],
    }


def test_a_request_past_its_timeout_is_retried_then_reported(server: ScriptedServer) -> None:
    server.script(Answer(hold=True), Answer(hold=True))

    with pytest.raises(RetriesExhaustedError) as failure:
        fetch(server.url, timeout_s=0.2, retry=RetryPolicy(attempts=2, backoff_s=0.01))

    assert str(failure.value) == "customers: timed out after 0.2s (2 attempts)"
    [gap] = gaps(server)
    assert 0.19 <= gap < 1.5  # the client's 5 s default did not apply


def test_a_refused_connection_is_retried_then_reported() -> None:
    with pytest.raises(RetriesExhaustedError) as failure:
        fetch(f"http://127.0.0.1:{free_port()}/v1/customers")

    message = str(failure.value)
    assert message.startswith("customers: connection failed (ConnectError: ")
    assert message.endswith(" after 4 attempts")
    assert failure.value.status is None


def test_a_body_that_is_not_json_fails_without_a_retry(server: ScriptedServer) -> None:
    server.script(Answer(raw=b'{"data": ['))

    with pytest.raises(MalformedResponseError, match=r"^customers: malformed JSON: "):
        fetch(server.url)
    assert len(server.arrivals()) == 1


class _MissingMeansEmpty(ResponseClassifier):
    def classify(self, response: httpx.Response) -> ResponseAction:
        if response.status_code == 404:
            return ResponseAction.SKIP
        return super().classify(response)


def test_a_connector_can_call_an_answer_skippable(server: ScriptedServer) -> None:
    server.script(Answer(404, {"error": "feature not enabled"}))

    with pytest.raises(SkippableResponseError) as failure:
        fetch(server.url, classifier=_MissingMeansEmpty())

    assert failure.value.status == 404
    assert len(server.arrivals()) == 1


@pytest.mark.parametrize(
    ("status", "headers", "default", "stripe"),
    [
        (200, {}, ResponseAction.ACCEPT, ResponseAction.ACCEPT),
        (200, {"Stripe-Should-Retry": "false"}, ResponseAction.ACCEPT, ResponseAction.ACCEPT),
        (404, {}, ResponseAction.FAIL, ResponseAction.FAIL),
        (408, {}, ResponseAction.RETRY, ResponseAction.RETRY),
        (409, {}, ResponseAction.FAIL, ResponseAction.RETRY),
        (429, {}, ResponseAction.RETRY, ResponseAction.RETRY),
        (500, {}, ResponseAction.RETRY, ResponseAction.RETRY),
        (402, {"Stripe-Should-Retry": "true"}, ResponseAction.FAIL, ResponseAction.RETRY),
        (503, {"Stripe-Should-Retry": "false"}, ResponseAction.RETRY, ResponseAction.FAIL),
    ],
)
def test_classification_table(
    status: int, headers: dict[str, str], default: ResponseAction, stripe: ResponseAction
) -> None:
    response = httpx.Response(status, headers=headers)
    assert ResponseClassifier().classify(response) is default
    assert STRIPE_RESPONSES.classify(response) is stripe


def test_backoff_doubles_to_the_cap_with_jitter_below_it() -> None:
    policy = RetryPolicy(attempts=8, backoff_s=1.0, max_wait_s=5.0, jitter=0.5)
    for retry, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (7, 5.0)]:
        waits = [policy.wait_before_retry(retry) for _ in range(200)]
        assert all(full / 2 <= wait <= full for wait in waits)
        assert max(waits) - min(waits) > full / 10  # really random
    assert policy.wait_before_retry(1, server_wait_s=3.0) == 3.0
    assert policy.wait_before_retry(1, server_wait_s=60.0) == 5.0


# --- the token bucket ---------------------------------------------------------------------


async def _get_many(clients: list[SourceClient], url: str, each: int) -> None:
    await asyncio.gather(
        *(client.get_json(url, label="customers") for client in clients for _ in range(each))
    )


def test_the_bucket_spaces_requests(server: ScriptedServer) -> None:
    async def run() -> None:
        async with httpx.AsyncClient() as http:
            client = SourceClient(http, timeout_s=5, bucket=TokenBucket(rate=20, burst=1))
            await _get_many([client], server.url, 10)

    asyncio.run(run())

    times = sorted(arrival.at for arrival in server.arrivals())
    assert len(times) == 10
    assert 0.4 <= times[-1] - times[0] < 3  # 9 gaps of 1/20 s


def test_one_bucket_paces_every_collection_of_an_account(server: ScriptedServer) -> None:
    buckets = TokenBuckets()
    key = account_key("stripe", STRIPE_KEY)
    assert STRIPE_KEY not in key
    assert buckets.get(key, rate=20) is buckets.get(key, rate=20)
    assert buckets.get(key, rate=50).rate == 50  # a changed setting re-paces the same bucket
    assert buckets.get(account_key("stripe", "sk_test_other"), rate=20) is not buckets.get(
        key, rate=20
    )

    async def run() -> None:
        async with httpx.AsyncClient() as customers, httpx.AsyncClient() as prices:
            clients = [
                SourceClient(http, timeout_s=5, bucket=buckets.get(key, rate=20))
                for http in (customers, prices)
            ]
            await _get_many(clients, server.url, 5)

    asyncio.run(run())

    times = sorted(arrival.at for arrival in server.arrivals())
    assert len(times) == 10
    assert 0.4 <= times[-1] - times[0] < 3


class _FrozenClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_saves_a_burst_and_serves_callers_in_turn() -> None:
    clock = _FrozenClock()
    bucket = TokenBucket(rate=10, burst=3, clock=clock)

    waits = [bucket.reserve() for _ in range(5)]
    assert waits == pytest.approx([0, 0, 0, 0.1, 0.2])
    clock.now += 10  # a long quiet spell saves up no more than the burst
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0, 0, 0, 0.1])
    bucket.configure(rate=20, burst=1)
    assert bucket.reserve() == pytest.approx(0.1)  # 0.05 still owed, then one more at 20/s


def test_a_cancelled_waiter_hands_its_token_back() -> None:
    clock = _FrozenClock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock)

    async def run() -> float:
        await bucket.acquire()  # the saved-up token
        waiter = asyncio.create_task(bucket.acquire())  # reserves the token due in 1 s
        await asyncio.sleep(0)  # one loop turn: the task runs to its first await
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return bucket.reserve()

    assert asyncio.run(run()) == pytest.approx(1.0)  # not 2.0: the cancelled token came back


def test_a_fetched_page_is_freed_without_the_cyclic_collector(server: ScriptedServer) -> None:
    """httpx 0.28 ties a response to its stream in a cycle; the worker runs the cyclic
    collector rarely, so every page's body would stay in memory until it did."""
    server.script(Answer(), Answer(), Answer())
    enabled = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        for _ in range(3):
            fetch(server.url)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, httpx.Response)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()
    assert left == [], f"{len(left)} responses only the cyclic collector would free"
