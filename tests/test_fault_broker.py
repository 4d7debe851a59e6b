"""The broker dies under load and comes back empty: the api keeps answering, nothing is lost."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from tests.payloads import batch, signed
from tests.stack import ADMIN_PIN, SECRET, Stack
from tests.waiting import wait_for

IN_FLIGHT = 100
DURING_OUTAGE = 200


@pytest.fixture
def broker_stack(
    postgres: EmbeddedPostgres, own_broker: EmbeddedBroker, workdir: Path
) -> Iterator[Stack]:
    stack = Stack(postgres, own_broker, workdir).create()
    yield stack
    stack.stop_all()


def push(client: httpx.Client, url: str, word: str) -> tuple[str, int]:
    payload = batch([word])
    body, headers = signed(payload, SECRET)
    # Well below the pool's 30 s wait: an api that ties connections up to the broker fails.
    response = client.post(url, content=body, headers=headers, timeout=10)
    return str(payload["requestId"]), response.status_code


def test_broker_outage_under_load_loses_and_doubles_nothing(broker_stack: Stack) -> None:
    stack = broker_stack
    stack.start_worker()
    stack.start_api()
    url = stack.push_url
    answered = threading.Semaphore(0)

    def in_flight(i: int) -> tuple[str, int]:
        with httpx.Client() as client:
            result = push(client, url, f"inflight-{i}")
        answered.release()
        return result

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(in_flight, i) for i in range(IN_FLIGHT)]
        for _ in range(IN_FLIGHT // 3):
            assert answered.acquire(timeout=30)
        stack.broker.stop(signal.SIGKILL)  # mid-stream: a third answered, the rest in flight
        first = [f.result() for f in futures]

        def during(i: int) -> tuple[str, int]:
            with httpx.Client() as client:
                return push(client, url, f"outage-{i}")

        second = list(pool.map(during, range(DURING_OUTAGE)))

    pushes = first + second
    assert [code for _, code in pushes] == [202] * len(pushes)
    with stack.client() as client:
        ready = client.get("/readyz")
        stats = client.get("/api/admin/dictionary/internal-sync/stats")
        state = client.get(
            "/api/internal/dictionary-upserts/status",
            params={"requestId": second[-1][0]},
            headers={"X-Admin-PIN": ADMIN_PIN},
        )
    assert ready.status_code == 503
    assert ready.json()["checks"] == {
        "database": "ok",
        "broker": "unreachable",
        "config_files": "ok",
    }
    assert stats.status_code == 200 and stats.json()["pending"] >= DURING_OUTAGE
    assert state.status_code == 200 and state.json()["status"] == "pending"

    stack.broker.start()  # empty: it forgot every message

    def all_succeeded() -> bool:
        done = stack.scalar("SELECT count(*) FROM sync_jobs WHERE status = 'succeeded'")
        return bool(done == len(pushes))

    wait_for(all_succeeded, timeout=120, interval=0.5, what="every accepted push")
    assert stack.scalar("SELECT count(*) FROM sync_jobs") == len(pushes)
    assert stack.scalar("SELECT count(*) FROM dictionary_entries") == len(pushes)
    assert stack.scalar("SELECT count(*) FROM dictionary_audit_log") == len(pushes)
    assert stack.scalar("SELECT version FROM dictionary_versions WHERE lang = 'en'") == len(pushes)
    assert stack.scalar("SELECT count(*) FROM sync_events WHERE type = 'complete'") == len(pushes)
    # A copy the reconciler republished meanwhile may still be on its way out; it changes
    # nothing when it arrives.
    wait_for(lambda: stack.scalar("SELECT count(*) FROM outbox") == 0, what="the outbox to drain")
    assert stack.scalar("SELECT count(*) FROM sync_events WHERE type = 'complete'") == len(pushes)
    with stack.client() as client:
        wait_for(lambda: client.get("/readyz").status_code == 200, what="ready again")
    for name in ("api", "worker"):
        assert "Traceback" not in stack.log(name), name
