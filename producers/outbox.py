"""The outbox relay: publishes rows written in a job's transaction, then deletes them.

A row's writer publishes it right after its commit: the api a row it claimed as it wrote it
(``publish_rows``; ``WRITER_CLAIM_S``), other writers by id (``publish_ids``). The relay
pass publishes rows older than a grace period that nobody claims, claiming them first
(``claimed_until``, committed at once). Either publishes with no database connection held,
then deletes: waiting on the broker never ties up a pooled connection, so a broker outage
cannot starve the api of them. A publisher that dies mid-publish leaves its claim to
expire; a relay then publishes the row again (consumers are idempotent by request and
event id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from producers.kafka import DELIVERY_TIMEOUT_S, AsyncProducer
from producers.quiet import Quiet

log = logging.getLogger(__name__)

CLAIM_DUE = text(
    """
    UPDATE outbox SET claimed_until = now() + make_interval(secs => :lease)
    WHERE id IN (
        SELECT id FROM outbox
        WHERE created_at < now() - make_interval(secs => :grace)
          AND (claimed_until IS NULL OR claimed_until < now())
        ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED
    )
    RETURNING id, topic, request_id, key, value, headers
    """
)
# A claim its writer takes on a row as it writes it (no round trip of its own): it outlives
# the writer's send, so a slow or absent broker does not make the relay publish the row a
# second time meanwhile.
WRITER_CLAIM_S = DELIVERY_TIMEOUT_S + 5
# Rows published by id are read without a claim: they were committed a moment ago, and
# the relay takes only rows older than its grace period (a second publish, should a send
# outlast it, is ignored by every consumer).
READ_IDS = text(
    "SELECT id, topic, request_id, key, value, headers FROM outbox WHERE id = ANY(:ids)"
)
# Deleting the published rows and marking their jobs published, in one statement.
DELETE_IDS = text(
    """
    WITH gone AS (DELETE FROM outbox WHERE id = ANY(:ids) RETURNING request_id)
    UPDATE sync_jobs SET published_at = now()
    WHERE request_id IN (SELECT request_id FROM gone WHERE request_id IS NOT NULL)
      AND status = 'queued'
    """
)
# A claim, a delete and a release need not wait for their WAL flush (an fsync each, on the
# path from an accepted request to the broker): other sessions see them at once all the
# same, and one a crash loses only gets its row published again, which every consumer
# ignores (idempotent by request and event id). The job and its outbox row are committed
# durably by whoever wrote them, before the relay ever sees the row.
ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")
RELEASE_FAILED = text(
    "UPDATE outbox SET attempts = attempts + 1, last_error = :err, claimed_until = NULL "
    "WHERE id = ANY(:ids)"
)
# Rows published by id were not claimed, so nothing is released: a relay may hold them now.
RECORD_FAILED = text(
    "UPDATE outbox SET attempts = attempts + 1, last_error = :err WHERE id = ANY(:ids)"
)


class OutboxRelay:
    """Moves outbox rows to Kafka. Safe to run in several processes at once: relay passes
    claim the rows they take, and a row published twice is ignored by its consumers."""

    def __init__(
        self,
        engine: AsyncEngine,
        producer: AsyncProducer,
        grace_s: float = 2.0,
        lease_s: float = 60.0,
    ) -> None:
        self._engine = engine
        self._producer = producer
        self._grace_s = grace_s
        # Longer than the producer's delivery timeout: a claim outlives its publish.
        self._lease_s = lease_s
        self._quiet = Quiet(log, "outbox relay")

    async def publish_ids(self, ids: Sequence[int]) -> int:
        """Publish just these rows, committed a moment ago, now (the fast path)."""
        async with self._engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            rows = (await conn.execute(READ_IDS, {"ids": list(ids)})).mappings().all()
        return await self._publish(rows, RECORD_FAILED)

    async def publish_rows(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Publish rows committed a moment ago with a writer's claim, as the writer has them
        in hand (``id`` and the columns :data:`READ_IDS` reads), now; a failure releases
        them to the relay's next pass."""
        return await self._publish(rows, RELEASE_FAILED)

    async def publish_due(self, limit: int = 500) -> int:
        """Publish rows the fast path left behind (older than the grace period)."""
        params = {"grace": self._grace_s, "n": limit, "lease": self._lease_s}
        async with self._engine.begin() as conn:
            await conn.execute(ASYNC_COMMIT)
            rows = (await conn.execute(CLAIM_DUE, params)).mappings().all()
        return await self._publish(rows, RELEASE_FAILED)

    async def _publish(self, rows: Sequence[Mapping[Any, Any]], on_failure: TextClause) -> int:
        if not rows:
            return 0
        results = await asyncio.gather(*(self._send(r) for r in rows), return_exceptions=True)
        sent = [r for r, res in zip(rows, results, strict=True) if res is None]
        failed = [r["id"] for r, res in zip(rows, results, strict=True) if res is not None]
        async with self._engine.begin() as conn:
            await conn.execute(ASYNC_COMMIT)
            if sent:
                await conn.execute(DELETE_IDS, {"ids": [r["id"] for r in sent]})
            if failed:
                first = next(res for res in results if res is not None)
                await conn.execute(on_failure, {"ids": failed, "err": str(first)[:500]})
        if failed:
            self._quiet.failed(f"{len(failed)} of {len(rows)} rows not published: {first}")
        else:
            self._quiet.succeeded()
        return len(sent)

    async def _send(self, row: Mapping[Any, Any]) -> None:
        await self._producer.send(
            row["topic"],
            bytes(row["value"]),
            key=row["key"],
            headers=[(k, v.encode()) for k, v in row["headers"]],
        )

    async def run(self, interval_s: float, stop: asyncio.Event) -> None:
        """Publish due rows every ``interval_s`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                while await self.publish_due() > 0:
                    pass
            except Exception as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                self._quiet.failed(f"pass failed: {type(exc).__name__}: {first}"[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
