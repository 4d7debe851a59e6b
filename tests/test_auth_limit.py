"""Failed authentication is limited per client address, counted in PostgreSQL across replicas."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from api.clear_buckets import ClearBuckets
from cli.processes import free_port, wait_http_ok
from tests.payloads import batch, signed
from tests.stack import ADMIN_KEY, ADMIN_PIN, Stack
from tests.waiting import wait_for

# A minute: one failure regained every 10 s, room enough for a loaded machine to check the
# lock-out before a slot frees up.
LIMIT = 6


@pytest.fixture
def two_replicas(isolated_stack: Stack) -> Iterator[tuple[Stack, str]]:
    """Two api processes on one database; yields the stack and the second one's URL."""
    stack = isolated_stack
    stack.env_overrides.update(
        {
            "SYNCBUS_AUTH_FAILURES_PER_MINUTE": str(LIMIT),
            "INTERNAL_SYNC_TRUSTED_PROXIES": "127.0.0.1",
        }
    )
    stack.start_api()
    port = free_port()
    second = stack._spawn("api-2", ["api", "--port", str(port)])
    wait_http_ok(f"http://127.0.0.1:{port}/readyz", second, 30)
    yield stack, f"http://127.0.0.1:{port}"


def pin(value: str, address: str | None = None) -> dict[str, str]:
    headers = {"X-Admin-PIN": value}
    if address is not None:
        headers["X-Forwarded-For"] = address
    return headers


def test_wrong_pins_are_counted_across_replicas_then_refused(
    two_replicas: tuple[Stack, str],
) -> None:
    stack, other = two_replicas
    urls = [stack.url, other]
    codes = [
        httpx.get(f"{urls[i % 2]}/v1/syncs", headers=pin(f"guess-{i}")).status_code
        for i in range(LIMIT)
    ]
    assert codes == [401] * LIMIT

    for url in urls:  # even the right PIN: a locked-out guesser learns nothing
        refused = httpx.get(f"{url}/v1/syncs", headers=pin(ADMIN_PIN))
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["retry-after"]) <= 10
    signed_body, signed_headers = signed(batch(["limited"]), "wrong-secret")
    push = httpx.post(stack.push_url, content=signed_body, headers=signed_headers)
    assert push.status_code == 429

    elsewhere = httpx.get(f"{other}/v1/syncs", headers=pin(ADMIN_PIN, "203.0.113.7"))
    assert elsewhere.status_code == 200, "another address has its own budget"
    anonymous = httpx.get(f"{stack.url}/v1/syncs")
    assert anonymous.status_code == 401, "no credential, nothing guessed, nothing counted"

    wait_for(
        lambda: httpx.get(f"{stack.url}/v1/syncs", headers=pin(ADMIN_PIN)).status_code == 200,
        timeout=30,
        interval=0.25,
        what="the budget to refill",
    )
    assert stack.scalar("SELECT count(*) FROM sync_jobs") == 0


def test_wrong_keys_at_supasaasys_job_status_are_counted_too(
    two_replicas: tuple[Stack, str],
) -> None:
    """Seed 001's job status takes the admin key; guessing it there is limited as anywhere,
    and answered in supasaasy's words."""
    stack, other = two_replicas
    path = f"/functions/v1/job-status/{uuid.uuid4()}"
    answers = [
        httpx.get(f"{(stack.url, other)[i % 2]}{path}", headers=bearer(f"guess-{i}"))
        for i in range(LIMIT)
    ]
    assert [a.status_code for a in answers] == [401] * LIMIT
    assert answers[0].json() == {
        "error": "Unauthorized: invalid or missing API key",
        "success": False,
    }
    refused = httpx.get(f"{stack.url}{path}", headers=bearer(ADMIN_KEY))
    assert refused.status_code == 429, refused.text
    assert refused.json()["success"] is False
    assert refused.json()["error"].startswith("Too many failed authentication attempts")
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    unknown = httpx.get(f"{other}{path}", headers=bearer(ADMIN_KEY, "203.0.113.7"))
    assert unknown.status_code == 404, "another address has its own budget"


def bearer(key: str, address: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if address is not None:
        headers["X-Forwarded-For"] = address
    return headers


def test_an_address_seen_clear_is_remembered_briefly_and_forgotten_on_a_failure() -> None:
    clear = ClearBuckets(ttl_s=60)
    assert not clear.is_clear("auth:10.0.0.1")
    clear.saw_clear("auth:10.0.0.1")
    assert clear.is_clear("auth:10.0.0.1")
    assert not clear.is_clear("auth:10.0.0.2"), "per address"
    clear.forget("auth:10.0.0.1")
    assert not clear.is_clear("auth:10.0.0.1"), "a failure here is checked at once"
    expired = ClearBuckets(ttl_s=0)
    expired.saw_clear("auth:10.0.0.1")
    assert not expired.is_clear("auth:10.0.0.1"), "only for ttl_s"
    full = ClearBuckets(ttl_s=60, max_size=2)
    for n in range(3):
        full.saw_clear(f"auth:10.0.0.{n}")
    assert full.is_clear("auth:10.0.0.2") and not full.is_clear("auth:10.0.0.0"), "bounded"
