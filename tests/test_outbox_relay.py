"""The outbox relay against real PostgreSQL and a real broker: who publishes which row."""

from __future__ import annotations

import asyncio
import json
import uuid

import psycopg

from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from db import outbox_rows
from db.engine import create_engine
from db.migrate import upgrade
from producers.kafka import AsyncProducer, ensure_topics
from producers.outbox import WRITER_CLAIM_S, OutboxRelay
from schemas.settings import Settings
from tests.kafka_tools import read_topic


def test_the_relay_leaves_a_row_its_writer_claimed_to_the_writer(
    postgres: EmbeddedPostgres, broker: EmbeddedBroker
) -> None:
    """A row the api claimed as it wrote it is its own to publish: a relay pass (here with
    no grace period at all) publishes the unclaimed row only, so a broker slower than the
    grace period does not get the writer's row twice. The writer's publish sends it and
    deletes it."""
    url = postgres.create_database(f"relay_{uuid.uuid4().hex[:8]}")
    settings = Settings(DATABASE_URL=url)
    upgrade(settings)
    topic = f"relay-test-{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.bootstrap, [topic], partitions=1)

    def row(name: str) -> dict[str, object]:
        value = json.dumps({"name": name}).encode()
        return {"topic": topic, "request_id": name, "key": name, "value": value}

    async def go() -> tuple[int, int, list[str]]:
        engine = create_engine(settings, pool_size=2)
        producer = AsyncProducer(broker.bootstrap)
        try:
            async with engine.begin() as conn:
                claimed = {**row("claimed"), "headers": []}
                claimed_id = await outbox_rows.add_outbox_row(
                    conn, claimed, claimed_for_s=WRITER_CLAIM_S
                )
                await outbox_rows.add_outbox_row(conn, {**row("free"), "headers": []})
            relay = OutboxRelay(engine, producer, grace_s=0)
            by_relay = await relay.publish_due()
            with psycopg.connect(url) as db:
                left = [r for (r,) in db.execute("SELECT request_id FROM outbox").fetchall()]
            by_writer = await relay.publish_rows([{"id": claimed_id, **claimed}])
            return by_relay, by_writer, left
        finally:
            await asyncio.to_thread(producer.close)
            await engine.dispose()

    by_relay, by_writer, left = asyncio.run(go())
    assert (by_relay, left, by_writer) == (1, ["claimed"], 1)
    with psycopg.connect(url) as db:
        assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
    published = read_topic(
        broker.bootstrap, topic, until=lambda values: len(values) >= 2, timeout=10
    )
    assert sorted(v["name"] for v in published) == ["claimed", "free"]
