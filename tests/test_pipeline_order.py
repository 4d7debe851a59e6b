"""Consecutive requests of a domain in the worker: when the next one may start applying."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from db import jobs
from db.engine import create_engine
from db.migrate import upgrade
from producers.kafka import AsyncProducer, ensure_topics
from schemas.events import SyncRequest
from schemas.jobs import JobCounts
from schemas.settings import Settings
from schemas.topics import Topics
from streams.domains.base import DomainError, JobContext, Outcome
from streams.pipeline import MAX_REPEATS, SyncPipeline
from tests.kafka_tools import read_topic

DEADLINE_S = 20


@dataclass
class Setup:
    url: str
    engine: AsyncEngine
    pipeline: SyncPipeline
    topic: str


@asynccontextmanager
async def pipeline_for(
    postgres: EmbeddedPostgres,
    broker: EmbeddedBroker,
    handler: Any,
    heartbeat_interval_s: float | None = None,
) -> AsyncIterator[Setup]:
    """A SyncPipeline with ``handler`` as the dictionary domain, on a fresh database and
    topic prefix."""
    url = postgres.create_database(f"order_{uuid.uuid4().hex[:8]}")
    settings = Settings(DATABASE_URL=url)
    upgrade(settings)
    topics = Topics(f"order{uuid.uuid4().hex[:6]}.")
    ensure_topics(broker.bootstrap, [topics.progress, topics.audit, topics.dlq], partitions=1)
    engine = create_engine(settings, pool_size=4)
    producer = AsyncProducer(broker.bootstrap)
    pipeline = SyncPipeline(
        engine, producer, topics, {"dictionary": handler}, heartbeat_interval_s=heartbeat_interval_s
    )
    try:
        yield Setup(url, engine, pipeline, topics.requests("dictionary"))
    finally:
        producer.close()
        await engine.dispose()


def dead_letters(bootstrap: str, dlq: str) -> list[tuple[str, str]]:
    """(request id, reason) of every letter in ``dlq``, read up to a marker sent now."""
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(dlq, json.dumps({"request_id": marker, "reason": ""}).encode())
    producer.flush(10)
    letters = read_topic(
        bootstrap, dlq, until=lambda vs: any(v["request_id"] == marker for v in vs)
    )
    assert any(v["request_id"] == marker for v in letters), "the marker never arrived"
    return [(v["request_id"], v["reason"]) for v in letters if v["request_id"] != marker]


def request(request_id: str) -> bytes:
    return SyncRequest(request_id=request_id, domain="dictionary").model_dump_json().encode()


async def job_row(engine: AsyncEngine, request_id: str) -> Any:
    query = text("SELECT id, status, attempt, heartbeat_at FROM sync_jobs WHERE request_id = :r")
    async with engine.connect() as conn:
        return (await conn.execute(query, {"r": request_id})).one()


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

    async def go() -> str:
        async with pipeline_for(postgres, broker, handler, heartbeat_interval_s) as setup:
            handler.expect("A", held=True)
            handler.expect("B", held=False)
            released_a: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            handle = setup.pipeline.handle
            a = asyncio.create_task(handle(setup.topic, request("A"), release=released_a))
            b = asyncio.create_task(handle(setup.topic, request("B"), after=released_a))
            await asyncio.wait_for(handler.applying["A"].wait(), DEADLINE_S)
            await asyncio.wait_for(handler.staged["B"].wait(), DEADLINE_S)
            assert not released_a.done(), "A released the next request before it committed"
            if while_held is not None:
                await while_held(setup.engine)
            handler.gates["A"].set()
            await asyncio.wait_for(asyncio.gather(a, b), DEADLINE_S)
            return setup.url

    url = asyncio.run(go())
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


def test_a_request_cancelled_mid_apply_goes_back_to_the_queue_and_runs_again(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    """The worker stops while a job applies: the job must be queued again at once (not left
    'running' until stale), so the redelivered message claims it, in its place in order."""
    handler = GatedHandler()

    async def go() -> None:
        async with pipeline_for(postgres, broker, handler) as setup:
            handler.expect("A", held=True)
            run = asyncio.create_task(setup.pipeline.handle(setup.topic, request("A")))
            await asyncio.wait_for(handler.applying["A"].wait(), DEADLINE_S)
            run.cancel()
            with pytest.raises(asyncio.CancelledError):
                await run
            job_id, status, attempt, beat = await job_row(setup.engine, "A")
            assert (status, attempt) == ("queued", 1)
            republish_deferred = text(
                "SELECT published_at = updated_at FROM sync_jobs WHERE request_id = 'A'"
            )
            async with setup.engine.connect() as conn:  # its message is still in the topic
                assert (await conn.execute(republish_deferred)).scalar_one() is True
            async with setup.engine.begin() as conn:  # a late beat of attempt 1: ignored
                await jobs.heartbeat(conn, [(job_id, 1)])
            assert (await job_row(setup.engine, "A")).heartbeat_at == beat

            handler.expect("A", held=False)
            await asyncio.wait_for(setup.pipeline.handle(setup.topic, request("A")), DEADLINE_S)
            _, status, attempt, _ = await job_row(setup.engine, "A")
            assert (status, attempt) == ("succeeded", 2)

    asyncio.run(go())


class WatchedFuture(asyncio.Future[None]):
    """A future that says when something starts waiting for it."""

    def __init__(self) -> None:
        super().__init__()
        self.awaited = asyncio.Event()

    def add_done_callback(self, fn: Any, *, context: Any = None) -> None:
        self.awaited.set()
        super().add_done_callback(fn, context=context)


class AsksToWait(GatedHandler):
    """A handler whose ``prepare`` reads what an earlier request writes (the git domain: a
    release's last synced commit), and which says when a request must wait for it."""

    def __init__(self, asks: bool) -> None:
        super().__init__()
        self.asks = asks
        self.url = ""
        self.a_status_at_prepare: dict[str, str] = {}

    async def waits_for_previous(self, ctx: JobContext) -> bool:
        return self.asks

    async def prepare(self, ctx: JobContext) -> None:
        async with await psycopg.AsyncConnection.connect(self.url) as conn:
            cur = await conn.execute("SELECT status FROM sync_jobs WHERE request_id = 'A'")
            row = await cur.fetchone()
            assert row is not None
            self.a_status_at_prepare[ctx.request.request_id] = row[0]


@pytest.mark.parametrize("asks", [True, False], ids=["asks to wait", "does not"])
def test_a_request_whose_handler_asks_is_prepared_only_after_the_previous_commit(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker, asks: bool
) -> None:
    """B, after A (held while it applies): prepared ahead as usual, or, when its handler
    asks, only once A committed, so that its prepare reads what A wrote."""
    handler = AsksToWait(asks)

    async def go() -> None:
        async with pipeline_for(postgres, broker, handler) as setup:
            handler.url = setup.url
            handler.expect("A", held=True)
            handler.expect("B", held=False)
            released_a = WatchedFuture()
            handle = setup.pipeline.handle
            a = asyncio.create_task(handle(setup.topic, request("A"), release=released_a))
            await asyncio.wait_for(handler.applying["A"].wait(), DEADLINE_S)
            b = asyncio.create_task(handle(setup.topic, request("B"), after=released_a))
            await asyncio.wait_for(released_a.awaited.wait(), DEADLINE_S)  # B waits for A
            handler.gates["A"].set()
            await asyncio.wait_for(asyncio.gather(a, b), DEADLINE_S)

    asyncio.run(go())
    assert handler.a_status_at_prepare["B"] == ("succeeded" if asks else "running")


def test_a_request_that_ends_early_still_waits_for_the_one_before_it(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    """A applies (held); B is dead-lettered at once; C, after B, must still apply only
    after A committed: a release waits for the release before it."""
    handler = GatedHandler()

    async def go() -> None:
        async with pipeline_for(postgres, broker, handler) as setup:
            handler.expect("A", held=True)
            handler.expect("C", held=False)
            loop = asyncio.get_running_loop()
            released_a: asyncio.Future[None] = loop.create_future()
            released_b: asyncio.Future[None] = loop.create_future()
            handle = setup.pipeline.handle
            a = asyncio.create_task(handle(setup.topic, request("A"), release=released_a))
            await asyncio.wait_for(handler.applying["A"].wait(), DEADLINE_S)
            await handle(setup.topic, b"not a sync request", after=released_a, release=released_b)
            assert not released_b.done(), "B released C before A committed"
            c = asyncio.create_task(handle(setup.topic, request("C"), after=released_b))
            await asyncio.wait_for(handler.staged["C"].wait(), DEADLINE_S)
            handler.gates["A"].set()
            await asyncio.wait_for(asyncio.gather(a, c), DEADLINE_S)
            assert handler.a_status_seen["C"] == "succeeded", "C applied before A's commit"

    asyncio.run(go())


def test_a_request_whose_attempt_was_superseded_runs_again_before_the_next_one(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    """While A applies, its job goes back to the queue (as the reconciler does with a job
    whose heartbeat went stale in an outage): A's commit is refused, and A must claim and
    run its job again before B, queued behind it, applies."""

    async def requeue_a(engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE sync_jobs SET status = 'queued' WHERE request_id = 'A'")
            )

    handler = GatedHandler()
    steps = run_two(postgres, broker, handler, while_held=requeue_a)
    runs_of_a = [i for i, step in enumerate(steps) if step == ("done", "A")]
    assert len(runs_of_a) == 2, steps
    assert runs_of_a[-1] < steps.index(("apply", "B")), steps
    assert handler.a_status_seen["B"] == "succeeded"


class FailingHandler:
    """Fails each job with a DomainError whose message or details PostgreSQL refuses."""

    def __init__(self, details: dict[str, Any] | None, message: str) -> None:
        self.details = details
        self.message = message

    async def prepare(self, ctx: JobContext) -> None:
        return None

    async def stage(self, ctx: JobContext, prepared: None, conn: Any) -> None:
        return None

    async def apply(self, ctx: JobContext, staged: None, conn: Any) -> Outcome:
        raise DomainError(self.message, details=self.details)


@pytest.mark.parametrize(
    ("details", "message", "recorded"),
    [
        # A NUL in the message is replaced.
        (None, "entry 3 is broken: \x00", "entry 3 is broken: \ufffd"),
        # Details PostgreSQL refuses: recorded in a transaction of its own, without them.
        ({"raw": "\x00"}, "entry 3 is broken: \x00", "entry 3 is broken: \ufffd"),
        # A message that cannot be stored at all (not UTF-8): a bare internal error instead.
        (None, "entry 3 is broken: \ud800", "internal error (UnicodeEncodeError)"),
    ],
)
def test_a_failure_that_cannot_be_recorded_still_ends_the_job(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker, details: Any, message: str, recorded: str
) -> None:
    """Left 'running', the reconciler would requeue the job, and it would fail into the
    dead-letter topic again every few minutes, for ever."""

    async def go() -> Any:
        async with pipeline_for(postgres, broker, FailingHandler(details, message)) as setup:
            await asyncio.wait_for(setup.pipeline.handle(setup.topic, request("F")), DEADLINE_S)
            query = text(
                "SELECT status, error_message, "
                "(SELECT data FROM sync_events e WHERE e.job_id = j.id ORDER BY seq DESC LIMIT 1) "
                "FROM sync_jobs j WHERE request_id = 'F'"
            )
            async with setup.engine.connect() as conn:
                row = (await conn.execute(query)).one()
            return setup.topic.removesuffix("requests.dictionary") + "dlq", row

    dlq, (status, message, last_event) = asyncio.run(go())
    assert status == "failed"
    assert message.startswith(recorded), message
    assert last_event["success"] is False and last_event["error"] == message
    assert dead_letters(broker.bootstrap, dlq) == [("F", message)], "one letter, its reason"


class FailsOneHandler:
    """Fails request X with details PostgreSQL refuses (a NUL); the others apply. Applies
    a scope's queued jobs together, as the dictionary domain does."""

    groups_by_scope = True

    async def prepare(self, ctx: JobContext) -> None:
        return None

    async def stage(self, ctx: JobContext, prepared: None, conn: Any) -> None:
        return None

    async def apply(self, ctx: JobContext, staged: None, conn: Any) -> Outcome:
        if ctx.request.request_id == "X":
            raise DomainError("entry 1 is broken", details={"raw": "\x00"})
        return Outcome(counts=JobCounts())


def test_a_group_whose_failure_cannot_be_recorded_fails_only_the_bad_job(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    """X and Y apply together (Y's message claims X, queued before it, along). X fails, and
    recording its failure in the group's transaction fails too: X still ends failed, alone,
    and Y runs again at once instead of waiting for the reconciler with its request in the
    dead-letter topic."""

    async def go() -> Any:
        async with pipeline_for(postgres, broker, FailsOneHandler()) as setup:
            async with setup.engine.begin() as conn:
                for request_id in ("X", "Y"):
                    queued = SyncRequest(request_id=request_id, domain="dictionary")
                    await jobs.insert_job(
                        conn, queued, job_id=uuid.uuid4(), payload_sha256=None, body=None
                    )
            await asyncio.wait_for(setup.pipeline.handle(setup.topic, request("Y")), DEADLINE_S)
            query = text(
                "SELECT request_id, status, error_message, attempt FROM sync_jobs "
                "ORDER BY request_id"
            )
            async with setup.engine.connect() as conn:
                rows = (await conn.execute(query)).all()
            return setup.topic.removesuffix("requests.dictionary") + "dlq", rows

    dlq, rows = asyncio.run(go())
    assert [tuple(row) for row in rows] == [
        ("X", "failed", "entry 1 is broken", 1),
        ("Y", "succeeded", None, 2),
    ]
    assert dead_letters(broker.bootstrap, dlq) == [("X", "entry 1 is broken")]


class TimingOutHandler:
    """Every apply runs into a statement timeout, as under a role's statement_timeout."""

    def __init__(self) -> None:
        self.applies = 0

    async def prepare(self, ctx: JobContext) -> None:
        return None

    async def stage(self, ctx: JobContext, prepared: None, conn: Any) -> None:
        return None

    async def apply(self, ctx: JobContext, staged: None, conn: Any) -> Outcome:
        self.applies += 1
        await conn.execute("SET LOCAL statement_timeout = '20ms'")
        await conn.execute("SELECT pg_sleep(1)")
        return Outcome(counts=JobCounts())


def test_a_statement_timeout_every_time_fails_the_job_after_a_few_tries(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    """57014 is waited out (an operator's cancel passes), but not for ever: the same work
    timing out run after run would hold every request behind it."""
    handler = TimingOutHandler()

    async def go() -> Any:
        async with pipeline_for(postgres, broker, handler) as setup:
            await asyncio.wait_for(setup.pipeline.handle(setup.topic, request("T")), 60)
            query = text("SELECT status, error_message FROM sync_jobs WHERE request_id = 'T'")
            async with setup.engine.connect() as conn:
                return (await conn.execute(query)).one()

    status, message = asyncio.run(go())
    assert status == "failed"
    assert "SQLSTATE 57014" in message, message
    assert handler.applies == MAX_REPEATS + 1
