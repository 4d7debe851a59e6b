"""The short paths of a push: nothing waits for a poll interval, and a short job's events
share transactions instead of each taking one of its own."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from db.engine import create_engine
from db.migrate import upgrade
from producers.kafka import AsyncProducer, ensure_topics
from producers.sender import signed_headers
from schemas.settings import Settings
from streams.progress import HOLD_S, ProgressEmitter
from tests.claimed_emitter import claimed_emitter
from tests.kafka_tools import read_topic
from tests.payloads import batch, entry, signed
from tests.stack import SECRET, Stack
from tests.waiting import wait_for

# Far longer than any deadline below: a job that finishes within one was not published by
# a relay pass or by the reconciler.
SLOW = {
    "SYNCBUS_OUTBOX_POLL_MS": "30000",
    "SYNCBUS_RECONCILE_AFTER_S": "60",
    "SYNCBUS_RECONCILE_INTERVAL_MS": "30000",
}


def push_and_wait(stack: Stack, word: str, timeout: float) -> tuple[dict[str, Any], float]:
    """Push a one-entry batch; its final status and the seconds from POST to ``success``."""
    payload = batch(entries=[entry(word)])
    request_id = str(payload["requestId"])
    body, headers = signed(payload, SECRET)
    began = time.monotonic()
    response = httpx.post(stack.push_url, content=body, headers=headers, timeout=10)
    assert response.status_code == 202, response.text

    def finished() -> dict[str, Any] | None:
        answer = httpx.get(
            f"{stack.push_url}/status",
            params={"requestId": request_id},
            headers=signed_headers(SECRET, request_id, b""),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        state = dict(answer.json())
        return state if state["status"] in ("success", "failed") else None

    state = wait_for(finished, timeout=timeout, interval=0.01, what=f"{request_id} to finish")
    return state, time.monotonic() - began


def test_an_accepted_push_is_published_at_once_not_at_the_next_relay_pass(
    isolated_stack: Stack,
) -> None:
    stack = isolated_stack
    stack.env_overrides.update(SLOW)
    stack.start_worker()
    stack.start_api()
    # The first one also waits for the worker to join its group (well under the 30 s poll).
    first, _ = push_and_wait(stack, "latency-first", timeout=20)
    assert first["status"] == "success", first

    for word in ("latency-second", "latency-third"):
        state, took = push_and_wait(stack, word, timeout=3)
        assert state["status"] == "success", state
        assert took < 3
    # Deleted after the broker's ack, which may come after the worker applied the push
    # (well before the 30 s relay pass could).
    wait_for(
        lambda: stack.scalar("SELECT count(*) FROM outbox") == 0,
        timeout=2,
        what="the published rows deleted",
    )


# --- held progress events --------------------------------------------------------------------

Scenario = Callable[[ProgressEmitter, AsyncEngine, Callable[[], list[str]]], Awaitable[None]]


def run_emitter(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker, scenario: Scenario
) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Run ``scenario`` with an emitter of a claimed job (progress interval 1 s); the
    (seq, message) of the events stored, then of those published."""
    url = postgres.create_database(f"held_{uuid.uuid4().hex[:8]}")
    settings = Settings(DATABASE_URL=url)
    upgrade(settings)
    topic = f"held-test-{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.bootstrap, [topic], partitions=1)

    def stored_now(job_id: uuid.UUID) -> list[str]:
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT data ->> 'message' FROM sync_events WHERE job_id = %s ORDER BY seq",
                (job_id,),
            ).fetchall()
        return [message for (message,) in rows]

    async def go() -> uuid.UUID:
        engine = create_engine(settings, pool_size=3)
        producer = AsyncProducer(broker.bootstrap)
        try:
            emitter = await claimed_emitter(engine, producer, topic, 1.0)
            job_id = emitter.job_id
            await scenario(emitter, engine, lambda: stored_now(job_id))
            return job_id
        finally:
            await asyncio.to_thread(producer.close)
            await engine.dispose()

    job_id = asyncio.run(go())
    with psycopg.connect(url) as conn:
        stored = conn.execute(
            "SELECT seq, data ->> 'message' FROM sync_events WHERE job_id = %s ORDER BY seq",
            (job_id,),
        ).fetchall()
    published = read_topic(broker.bootstrap, topic, until=lambda v: len(v) >= len(stored))
    return (
        [(int(seq), str(message)) for seq, message in stored],
        [(int(v["seq"]), str(v["data"]["message"])) for v in published],
    )


def test_held_events_go_in_the_final_transaction_before_its_own(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    async def scenario(
        emitter: ProgressEmitter, engine: AsyncEngine, stored: Callable[[], list[str]]
    ) -> None:
        await emitter.log("starting")
        await emitter.log("validated")
        assert stored() == [], "held, not written in transactions of their own"
        async with engine.begin() as conn:
            await emitter.emit_in(conn, "log", {"message": "done"})
        emitter.flush()

    stored, published = run_emitter(postgres, broker, scenario)
    assert stored == [(1, "starting"), (2, "validated"), (3, "done")]
    assert published == stored


def test_a_held_event_is_written_within_the_hold_time_when_nothing_follows(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    async def scenario(
        emitter: ProgressEmitter, engine: AsyncEngine, stored: Callable[[], list[str]]
    ) -> None:
        began = time.monotonic()
        await emitter.log("starting")
        while stored() != ["starting"]:
            assert time.monotonic() - began < HOLD_S + 2, "the held event was never written"
            await asyncio.sleep(0.01)

    stored, published = run_emitter(postgres, broker, scenario)
    assert stored == [(1, "starting")]
    assert published == stored


def test_events_held_before_a_rolled_back_transaction_are_written_by_the_next(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    async def scenario(
        emitter: ProgressEmitter, engine: AsyncEngine, stored: Callable[[], list[str]]
    ) -> None:
        await emitter.log("starting")
        conn = await engine.connect()
        transaction = await conn.begin()
        await emitter.emit_in(conn, "log", {"message": "rolled back"})
        await transaction.rollback()
        await conn.close()
        emitter.discard()
        async with engine.begin() as conn:
            await emitter.emit_in(conn, "log", {"message": "failed"})
        emitter.flush()

    stored, published = run_emitter(postgres, broker, scenario)
    assert stored == [(1, "starting"), (2, "failed")]
    assert published == stored
