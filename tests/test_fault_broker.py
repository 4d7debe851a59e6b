"""The broker dies under load and comes back empty: the api keeps answering, nothing is lost."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from cli.processes import free_port
from producers.kafka import AsyncProducer, ensure_topics
from producers.outbox import WRITER_CLAIM_S
from schemas.topics import Topics
from streams.job_publish import JobPublisher
from tests.kafka_tools import read_topic
from tests.payloads import batch, signed
from tests.stack import ADMIN_PIN, SECRET, Stack
from tests.waiting import wait_for

IN_FLIGHT = 100
DURING_OUTAGE = 200
# How long the 300 accepted pushes may take to succeed once the broker is back: about 10 s
# alone, far more on a loaded machine (one CI run passed pytest-timeout's 120 s for the
# whole test; this says what the jobs were doing if it happens again).
RECOVERY_S = 150


@pytest.fixture
def broker_stack(
    postgres: EmbeddedPostgres, own_broker: EmbeddedBroker, workdir: Path
) -> Iterator[Stack]:
    stack = Stack(postgres, own_broker, workdir).create()
    yield stack
    stack.discard()


def push(client: httpx.Client, url: str, word: str) -> tuple[str, int]:
    payload = batch([word])
    body, headers = signed(payload, SECRET)
    # Well below the pool's 30 s wait: an api that ties connections up to the broker fails.
    response = client.post(url, content=body, headers=headers, timeout=10)
    return str(payload["requestId"]), response.status_code


@pytest.mark.timeout(RECOVERY_S + 120)
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

    try:
        wait_for(all_succeeded, timeout=RECOVERY_S, interval=0.5, what="every accepted push")
    except AssertionError as exc:  # what the next reader needs to tell slow from stuck
        statuses = stack.query("SELECT status, count(*) FROM sync_jobs GROUP BY 1 ORDER BY 1")
        outbox = stack.scalar("SELECT count(*) FROM outbox")
        raise AssertionError(
            f"{exc}\njobs by status: {statuses}; outbox rows: {outbox}\n"
            f"--- worker log ---\n{stack.log('worker')[-4000:]}\n"
            f"--- api log ---\n{stack.log('api')[-2000:]}"
        ) from None
    assert stack.scalar("SELECT count(*) FROM sync_jobs") == len(pushes)
    assert stack.scalar("SELECT count(*) FROM dictionary_entries") == len(pushes)
    assert stack.scalar("SELECT count(*) FROM dictionary_audit_log") == len(pushes)
    assert stack.scalar("SELECT version FROM dictionary_versions WHERE lang = 'en'") == len(pushes)
    assert stack.scalar("SELECT count(*) FROM sync_events WHERE type = 'complete'") == len(pushes)
    # A copy the reconciler republished meanwhile may still be on its way out; it changes
    # nothing when it arrives. A row its writer claimed during the outage waits out the
    # claim (WRITER_CLAIM_S) before a relay takes it: the deadline must outlast that.
    drained = WRITER_CLAIM_S + 40
    wait_for(
        lambda: stack.scalar("SELECT count(*) FROM outbox") == 0,
        timeout=drained,
        what="the outbox to drain",
    )
    assert stack.scalar("SELECT count(*) FROM sync_events WHERE type = 'complete'") == len(pushes)
    with stack.client() as client:
        wait_for(lambda: client.get("/readyz").status_code == 200, what="ready again")
    for name in ("api", "worker"):
        assert "Traceback" not in stack.log(name), name


@pytest.mark.parametrize("phase", ["joining group", "consuming as group"])
def test_a_worker_stops_at_once_while_the_broker_is_down(broker_stack: Stack, phase: str) -> None:
    """SIGTERM with the broker gone: the worker stops in seconds, whether it was joining
    its group (the start waited for the broker without end, or, the broker gone before
    Faust reached it, failed and ended the worker) or consuming (it took 60 s:
    aiokafka re-raised the cancellation of a fetch backing off after the broker error, and
    Faust's consumer thread ended without saying it had stopped; streams/faust_fixes.py).
    A broker gone before Faust reached it crashes Faust's start: mode and Faust report that
    in log lines without tracebacks (streams/crash_logging.py), and the worker retries."""
    stack = broker_stack
    worker = stack.start_worker()
    wait_for(lambda: f"worker {phase}" in stack.log("worker"), timeout=60, what=phase)
    stack.broker.stop(signal.SIGKILL)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    log = stack.log("worker")
    assert "Traceback" not in log, log[-3000:]
    if phase == "joining group":  # the join takes about a second (Tansu)
        assert "consuming as group" not in log, "the broker went away too late to test a start"


def test_a_dead_letter_waits_for_the_broker_to_come_back(
    own_broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """For a message that cannot be parsed, the letter is its only record: a broker that
    is away is waited out, not a reason to drop it."""
    caplog.set_level(logging.INFO)
    topics = Topics(f"dl{uuid.uuid4().hex[:6]}.")
    own_broker.stop()

    def reported() -> bool:
        return any("dead letter for dl-1: not delivered" in r.getMessage() for r in caplog.records)

    async def go() -> None:
        producer = AsyncProducer(own_broker.bootstrap, **{"message.timeout.ms": 1000})
        publisher = JobPublisher(producer, topics)
        try:
            source = topics.requests("dictionary")
            task = asyncio.create_task(
                publisher.dead_letter(source, b"{broken", "unparseable", request_id="dl-1")
            )
            deadline = asyncio.get_running_loop().time() + 30
            while not reported():
                assert not task.done(), "the letter was dropped while the broker was away"
                assert asyncio.get_running_loop().time() < deadline, "no failed delivery seen"
                await asyncio.sleep(0.05)
            assert not task.done(), "the letter was dropped while the broker was away"
            own_broker.start()
            ensure_topics(own_broker.bootstrap, [topics.dlq], partitions=1)
            await asyncio.wait_for(task, 60)
        finally:
            producer.close()

    asyncio.run(go())
    letters = read_topic(
        own_broker.bootstrap,
        topics.dlq,
        until=lambda vs: any(v.get("request_id") == "dl-1" for v in vs),
    )
    assert [v["original"] for v in letters if v.get("request_id") == "dl-1"] == ["{broken"]


def test_an_event_the_producer_refuses_is_dropped_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Progress, audit and change events are sent after their job committed (PostgreSQL
    holds them): a queue filled while the broker is away, or a message over the size
    limit, must not fail the committed job."""
    caplog.set_level(logging.WARNING)
    producer = AsyncProducer(f"127.0.0.1:{free_port()}", **{"queue.buffering.max.messages": 2})
    try:
        producer.send_nowait("t.changes", b"x" * 1_100_000, key="big")
        for n in range(5):
            producer.send_nowait("t.progress", b"{}", key=str(n))
    finally:
        producer.close(timeout=0)
    said = [r.getMessage() for r in caplog.records]
    # One line per kind of refusal (and minute), not one per message.
    assert len(said) == 2, said
    assert said[0].startswith("publishing events (refused): to t.changes: "), said
    assert said[0].endswith("; dropped"), said
    assert said[1] == (
        "publishing events (queue full): to t.progress: the producer's queue is full; dropped"
    ), said
