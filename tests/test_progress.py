"""Progress events of a job: throttled by SYNCBUS_PROGRESS_INTERVAL_MS, the last one always."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from db import jobs
from db.engine import create_engine
from db.migrate import upgrade
from producers.kafka import AsyncProducer, ensure_topics
from schemas.settings import Settings
from streams.progress import ProgressEmitter
from tests.claimed_emitter import claimed_emitter
from tests.kafka_tools import read_topic


def emitted(postgres: EmbeddedPostgres, broker: EmbeddedBroker, interval_s: float) -> list[int]:
    """Report 1000..4000 of 4000 as fast as possible; the ``processed`` values stored."""
    url = postgres.create_database(f"progress_{uuid.uuid4().hex[:8]}")
    settings = Settings(DATABASE_URL=url)
    upgrade(settings)
    topic = f"progress-test-{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.bootstrap, [topic], partitions=1)

    async def go() -> uuid.UUID:
        engine = create_engine(settings, pool_size=2)
        producer = AsyncProducer(broker.bootstrap)
        try:
            emitter = await claimed_emitter(engine, producer, topic, interval_s)
            for done in (1000, 2000, 3000, 4000):
                await emitter.progress(done, 4000)
            return emitter.job_id
        finally:
            producer.close()
            await engine.dispose()

    job_id = asyncio.run(go())
    with psycopg.connect(url) as conn:
        stored = conn.execute(
            "SELECT (data ->> 'processed')::int FROM sync_events WHERE job_id = %s ORDER BY seq",
            (job_id,),
        ).fetchall()
    published = read_topic(broker.bootstrap, topic, until=lambda v: len(v) >= len(stored))
    assert [v["data"]["processed"] for v in published] == [p for (p,) in stored]
    return [p for (p,) in stored]


def test_progress_within_the_interval_is_dropped_but_the_last_always_goes(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    assert emitted(postgres, broker, interval_s=3600) == [1000, 4000]


def test_an_interval_of_zero_sends_every_step(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    assert emitted(postgres, broker, interval_s=0) == [1000, 2000, 3000, 4000]


def test_a_groups_held_events_leave_out_a_job_whose_attempt_was_requeued(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    url = postgres.create_database(f"progress_{uuid.uuid4().hex[:8]}")
    settings = Settings(DATABASE_URL=url)
    upgrade(settings)
    topic = f"progress-test-{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.bootstrap, [topic], partitions=1)

    async def go() -> tuple[ProgressEmitter, ProgressEmitter]:
        engine = create_engine(settings, pool_size=2)
        producer = AsyncProducer(broker.bootstrap)
        try:
            kept, lost = [
                await claimed_emitter(engine, producer, topic, 3600, defer=True) for _ in "ab"
            ]
            await kept.log("kept")
            await lost.log("lost")
            async with engine.begin() as conn:  # the reconciler took this one back
                assert await jobs.requeue_attempt(conn, lost.job_id, lost.attempt)
            await ProgressEmitter.write_held_of(engine, [lost, kept])
            with pytest.raises(jobs.AttemptSuperseded):
                await lost.log("after")
            await kept.emit("log", {"message": "last"}, now=True)
            return kept, lost
        finally:
            producer.close()
            await engine.dispose()

    kept, lost = asyncio.run(go())
    with psycopg.connect(url) as conn:
        logged = conn.execute(
            "SELECT job_id, data ->> 'message' FROM sync_events ORDER BY job_id, seq"
        ).fetchall()
        beats: dict[uuid.UUID, bool] = dict(
            conn.execute("SELECT id, heartbeat_at > started_at FROM sync_jobs").fetchall()
        )
    assert logged == [(kept.job_id, "kept"), (kept.job_id, "last")]
    assert beats == {kept.job_id: True, lost.job_id: False}
    published = read_topic(broker.bootstrap, topic, until=lambda v: len(v) >= 2)
    assert [v["data"]["message"] for v in published] == ["kept", "last"]
