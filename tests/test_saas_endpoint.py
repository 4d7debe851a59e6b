"""``POST /sync`` as supasaasy's clients call it: every error code in its body format, the
rate limit shared by api replicas, CORS for configured origins only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from cli.processes import free_port, wait_http_ok
from tests.fake_stripe import FakeStripe
from tests.saas_stack import APP, configure
from tests.stack import ADMIN_KEY, Stack
from tests.waiting import wait_for

OTHER_KEY = "second-admin-key"
BEARER = {"Authorization": f"Bearer {ADMIN_KEY}"}
ORIGIN = "https://admin.example.com"


@pytest.fixture
def edge(isolated_stack: Stack, tmp_path: Path) -> Iterator[tuple[Stack, str]]:
    """Two api replicas, no worker (jobs stay queued), a rate limit of 5 a minute."""
    with FakeStripe() as fake:
        configure(
            isolated_stack,
            fake,
            tmp_path,
            ADMIN_API_KEY=f"{ADMIN_KEY},{OTHER_KEY}",
            SYNCBUS_SYNC_RATE_LIMIT="5",
            SYNCBUS_CORS_ORIGINS=ORIGIN,
            INTERNAL_SYNC_TRUSTED_PROXIES="127.0.0.1",
        )
        isolated_stack.start_api()
        port = free_port()
        second = isolated_stack._spawn("api-2", ["api", "--port", str(port)])
        wait_http_ok(f"http://127.0.0.1:{port}/readyz", second, 30)
        yield isolated_stack, f"http://127.0.0.1:{port}"


def post(url: str, body: bytes | None = None, *, key: str | None = ADMIN_KEY,
         path: str = "/sync", **headers: str) -> httpx.Response:  # fmt: skip
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(f"{url}{path}", content=body, headers=headers, timeout=30)


def refusal(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert body["success"] is False and set(body) <= {"error", "success", "job_id"}, body
    return response.status_code, str(body["error"])


def test_every_refusal_in_supasaasys_words(edge: tuple[Stack, str]) -> None:
    stack, _ = edge
    url = stack.url
    cases = [
        (post(url, b'{"app_key": "stripe_test"}', key=None), 401, "Unauthorized"),
        (post(url, b'{"app_key": "stripe_test"}', key="wrong"), 401, "Unauthorized"),
        (post(url, b"{nope"), 400, "Invalid JSON body"),
        (post(url, b"[1]"), 400, "Invalid JSON body"),
        (post(url, b"{}"), 400, "Missing required field: app_key"),
        (post(url, b'{"app_key": "bad key!"}'), 400, "Invalid app_key format"),
        (post(url, b'{"app_key": "' + b"a" * 65 + b'"}'), 400, "Invalid app_key format"),
    ]
    for response, status, words in cases:
        assert refusal(response) == (status, refusal(response)[1])
        assert response.status_code == status and words in response.json()["error"], response.text
    # The per-key budget of 5 is spent above by the authenticated requests: use another key.
    more = [
        (post(url, b'{"app_key": "stripe_test", "resource_types": ["invoice"]}', key=OTHER_KEY),
         400, "Unknown resource type: invoice"),
        (post(url, b'{"app_key": "nope"}', key=OTHER_KEY), 404, "Unknown app_key: nope"),
        (post(url, b'{"app_key": "stripe_test", "mode": "sometimes"}', key=OTHER_KEY),
         400, "Invalid mode"),
    ]  # fmt: skip
    for response, status, words in more:
        assert response.status_code == status and words in response.json()["error"], response.text
    assert stack.scalar("SELECT count(*) FROM sync_jobs") == 0


def test_413_with_and_without_content_length_and_405(edge: tuple[Stack, str]) -> None:
    stack, _ = edge
    big = b'{"app_key": "' + b"x" * (1024 * 1024) + b'"}'
    declared = post(stack.url, big, key=OTHER_KEY)
    assert refusal(declared) == (413, "Request body too large")

    def chunks() -> Iterator[bytes]:
        yield big[: len(big) // 2]
        yield big[len(big) // 2 :]

    streamed = httpx.post(
        f"{stack.url}/functions/v1/sync",
        content=chunks(),
        headers={"Authorization": f"Bearer {OTHER_KEY}"},
    )
    assert refusal(streamed) == (413, "Request body too large")
    other = httpx.get(f"{stack.url}/sync")
    assert refusal(other) == (405, "Method not allowed")
    assert other.headers["allow"] == "POST, OPTIONS"


def test_409_while_a_sync_of_the_app_is_queued(edge: tuple[Stack, str]) -> None:
    stack, second = edge
    first = post(stack.url, b'{"app_key": "stripe_test"}')
    assert first.status_code == 202, first.text
    again = post(second, b'{"app_key": "stripe_test", "mode": "full"}')
    code, words = refusal(again)
    assert code == 409 and APP in words
    assert again.json()["job_id"] == first.json()["job_id"]


def test_the_rate_limit_is_per_key_and_shared_by_replicas(edge: tuple[Stack, str]) -> None:
    stack, second = edge
    answers = [post(u, b"{}") for u in (stack.url, second, stack.url, second, stack.url)]
    assert [a.status_code for a in answers] == [400] * 5
    assert answers[0].headers["ratelimit-policy"] == '"sync";q=5;w=60'
    assert answers[0].headers["ratelimit"].startswith('"sync";r=4;t=')
    limited = post(second, b"{}")
    assert refusal(limited) == (429, "Too many requests")
    assert 1 <= int(limited.headers["retry-after"]) <= 12
    assert limited.headers["ratelimit"].startswith('"sync";r=0;')
    assert post(stack.url, b"{}", key=OTHER_KEY).status_code == 400, "another key's budget"

    # Guessing spends an address's own budget, never a real key's.
    guesses = [post(stack.url, b"{}", key=f"guess-{i}") for i in range(5)]
    assert [g.status_code for g in guesses] == [401] * 5
    assert post(stack.url, b"{}", key="guess-6").status_code == 429
    elsewhere = post(stack.url, b"{}", key="guess-7", **{"X-Forwarded-For": "203.0.113.9"})
    assert elsewhere.status_code == 401
    assert post(second, b"{}", key=OTHER_KEY).status_code == 400


def test_cors_only_on_preflight_and_only_for_configured_origins(edge: tuple[Stack, str]) -> None:
    stack, _ = edge
    allowed = httpx.options(
        f"{stack.url}/sync",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"]
    stranger = httpx.options(
        f"{stack.url}/functions/v1/sync",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert stranger.status_code == 204
    assert "access-control-allow-origin" not in stranger.headers
    answer = post(stack.url, b"{}", Origin=ORIGIN)
    assert not any(h.startswith("access-control-") for h in answer.headers)
    for response in (allowed, stranger, answer):
        assert response.headers.get("access-control-allow-origin") != "*"


def test_a_database_outage_is_a_503_and_a_bug_a_bare_500_in_supasaasys_words(
    own_postgres: EmbeddedPostgres, broker: EmbeddedBroker, workdir: Path, tmp_path: Path
) -> None:
    stack = Stack(own_postgres, broker, workdir).create()
    status_path = f"/functions/v1/job-status/{uuid.uuid4()}"
    try:
        with FakeStripe() as fake:
            configure(stack, fake, tmp_path)
            stack.start_api()
            # immediate: the api waits for the job (no worker runs it) when the database
            # goes away; the job is recorded, so the answer is its 202, not an error.
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(
                    post, stack.url, b'{"app_key": "stripe_test", "immediate": true}'
                )
                wait_for(lambda: stack.scalar("SELECT count(*) FROM sync_jobs") == 1, what="job")
                own_postgres.stop()  # every database call now fails, for a while
                try:
                    queued = waiting.result(timeout=60)
                    away = [
                        post(stack.url, b'{"app_key": "stripe_test"}'),
                        httpx.get(f"{stack.url}{status_path}", headers=BEARER, timeout=30),
                        post(stack.url, b"{}", path="/webhook/stripe_test", key=None),
                    ]
                finally:
                    own_postgres.start()
            wait_for(
                lambda: httpx.get(f"{stack.url}/readyz").status_code == 200,
                timeout=30,
                what="the api to see the database again",
            )
            # A bug (here a table gone): the details go to the log, not to the client.
            stack.execute("ALTER TABLE sync_jobs RENAME TO sync_jobs_away")
            try:
                broken = [
                    post(stack.url, b'{"app_key": "stripe_test"}'),
                    httpx.get(f"{stack.url}{status_path}", headers=BEARER, timeout=30),
                ]
            finally:
                stack.execute("ALTER TABLE sync_jobs_away RENAME TO sync_jobs")
    finally:
        stack.stop_all()
    assert queued.status_code == 202, queued.text
    assert queued.headers["location"] == f"/functions/v1/job-status/{queued.json()['job_id']}"
    for answer in away:
        assert answer.status_code == 503, answer.text
        assert answer.json() == {
            "error": "The database is unavailable; try again shortly",
            "success": False,
        }
        assert answer.headers["retry-after"] == "5"
    for answer in broken:
        assert answer.status_code == 500, answer.text
        assert answer.json() == {"error": "Internal server error", "success": False}
    log = stack.log("api")
    assert "POST /sync failed" in log and "sync_jobs" in log, "the details stay in the log"
