"""Consecutive requests of a domain in the worker: when the next one may start applying."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from db.engine import create_engine
from db.migrate import upgrade
from producers.kafka import AsyncProducer, ensure_topics
from schemas.events import SyncRequest
from schemas.jobs import JobCounts
from schemas.settings import Settings
from schemas.topics import Topics
from streams.domains.base import JobContext, Outcome
from streams.pipeline import SyncPipeline

DEADLINE_S = 20


class GatedHandler:
    """Records each step; a request's ``apply`` holds until its gate opens, and notes the
    status of request A's job as this request's transaction sees it then."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, str]] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.staged: dict[str, asyncio.Event] = {}
        self.applying: dict[str, asyncio.Event] = {}
        self.a_status_seen: dict[str, str] = {}

    def expect(self, request_id: str, *, held: bool) -> None:
        self.gates[request_id] = asyncio.Event()
        self.staged[request_id] = asyncio.Event()
        self.applying[request_id] = asyncio.Event()
        if not held:
            self.gates[request_id].set()

    async def prepare(self, ctx: JobContext) -> None:
        return None

    async def stage(self, ctx: JobContext, prepared: None, conn: Any) -> None:
        self.steps.append(("stage", ctx.request.request_id))
        self.staged[ctx.request.request_id].set()

    async def apply(self, ctx: JobContext, staged: None, conn: Any) -> Outcome:
        request_id = ctx.request.request_id
        self.steps.append(("apply", request_id))
        cur = await conn.execute("SELECT status FROM sync_jobs WHERE request_id = 'A'")
        self.a_status_seen[request_id] = (await cur.fetchone())[0]
        self.applying[request_id].set()
        await self.gates[request_id].wait()
        self.steps.append(("done", request_id))
        return Outcome(counts=JobCounts())


def run_two(
    postgres: EmbeddedPostgres,
    broker: EmbeddedBroker,
    handler: GatedHandler,
    *,
    heartbeat_interval_s: float | None = None,
    while_held: Callable[[AsyncEngine], Awaitable[None]] | None = None,
) -> list[tuple[str, str]]:
    """Requests A and B as the agent runs them: B applies after A's release future. A is
    held in ``apply`` until B has staged; then A's release must still be pending (and
    ``while_held`` runs); the steps in the order they ran."""
    url = postgres.create_database(f"order_{uuid.uuid4().hex[:8]}")
    settings = Settings(DATABASE_URL=url)
    upgrade(settings)
    topics = Topics(f"order{uuid.uuid4().hex[:6]}.")
    ensure_topics(broker.bootstrap, [topics.progress, topics.audit], partitions=1)

    async def go() -> None:
        engine = create_engine(settings, pool_size=4)
        producer = AsyncProducer(broker.bootstrap)
        pipeline = SyncPipeline(
            engine,
            producer,
            topics,
            {"dictionary": handler},
            heartbeat_interval_s=heartbeat_interval_s,
        )
        first = SyncRequest(request_id="A", domain="dictionary")
        second = SyncRequest(request_id="B", domain="dictionary")
        handler.expect("A", held=True)
        handler.expect("B", held=False)
        loop = asyncio.get_running_loop()
        released_a: asyncio.Future[None] = loop.create_future()
        topic = topics.requests("dictionary")
        try:
            a = asyncio.create_task(
                pipeline.handle(topic, first.model_dump_json().encode(), release=released_a)
            )
            b = asyncio.create_task(
                pipeline.handle(topic, second.model_dump_json().encode(), after=released_a)
            )
            await asyncio.wait_for(handler.applying["A"].wait(), DEADLINE_S)
            await asyncio.wait_for(handler.staged["B"].wait(), DEADLINE_S)
            assert not released_a.done(), "A released the next request before it committed"
            if while_held is not None:
                await while_held(engine)
            handler.gates["A"].set()
            await asyncio.wait_for(asyncio.gather(a, b), DEADLINE_S)
        finally:
            producer.close()
            await engine.dispose()

    asyncio.run(go())
    with psycopg.connect(url) as conn:
        states = conn.execute("SELECT request_id, status FROM sync_jobs ORDER BY 1").fetchall()
    assert states == [("A", "succeeded"), ("B", "succeeded")]
    return handler.steps


def test_the_next_request_applies_only_after_the_previous_one_committed(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    """B is staged while A applies, but B's writes (and the snapshot its diff reads) must
    come after A's commit, or B could compare against rows A is about to change."""
    handler = GatedHandler()
    steps = run_two(postgres, broker, handler)
    assert steps.index(("stage", "B")) < steps.index(("done", "A")), "B was not staged ahead"
    assert steps.index(("done", "A")) < steps.index(("apply", "B"))
    assert handler.a_status_seen["B"] == "succeeded", "B applied before A's commit"


def test_a_request_waiting_for_the_previous_one_keeps_its_job_alive(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    """B waits (staged, no events) while A is held: its heartbeat must still move, or the
    reconciler would requeue it after SYNCBUS_JOB_STALE_AFTER_S and run it twice."""

    async def b_heartbeats(engine: AsyncEngine) -> None:
        query = text("SELECT heartbeat_at FROM sync_jobs WHERE request_id = 'B'")
        async with engine.connect() as conn:
            first = (await conn.execute(query)).scalar_one()
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            async with engine.connect() as conn:
                if (await conn.execute(query)).scalar_one() > first:
                    return
            await asyncio.sleep(0.02)
        raise AssertionError("B's heartbeat did not move while it waited")

    handler = GatedHandler()
    run_two(postgres, broker, handler, heartbeat_interval_s=0.05, while_held=b_heartbeats)
