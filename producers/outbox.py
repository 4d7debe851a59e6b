"""The outbox relay: publishes rows written in a job's transaction, then deletes them.

A row is claimed (``claimed_until``, committed at once), published with no database
connection held, then deleted: waiting on the broker never ties up a pooled connection,
so a broker outage cannot starve the api of them. A relay that dies mid-publish leaves
its claim to expire; another relay then publishes the row again (consumers are
idempotent by request and event id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from producers.kafka import AsyncProducer
from producers.quiet import Quiet

log = logging.getLogger(__name__)

_CLAIM = """
    UPDATE outbox SET claimed_until = now() + make_interval(secs => :lease)
    WHERE id IN (
        SELECT id FROM outbox
        WHERE {which} AND (claimed_until IS NULL OR claimed_until < now())
        ORDER BY id {limit} FOR UPDATE SKIP LOCKED
    )
    RETURNING id, topic, request_id, key, value, headers
"""
CLAIM_DUE = text(
    _CLAIM.format(which="created_at < now() - make_interval(secs => :grace)", limit="LIMIT :n")
)
CLAIM_IDS = text(_CLAIM.format(which="id = ANY(:ids)", limit=""))
DELETE_IDS = text("DELETE FROM outbox WHERE id = ANY(:ids)")
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
# Jobs whose request went out: the reconciler measures "unclaimed" from here.
MARK_JOBS = text(
    "UPDATE sync_jobs SET published_at = now() WHERE request_id = ANY(:rids) AND status = 'queued'"
)


class OutboxRelay:
    """Moves outbox rows to Kafka. Safe to run in several processes at once (claims)."""

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
        """Publish just these rows now (the api's fast path right after its commit)."""
        return await self._publish(CLAIM_IDS, {"ids": list(ids)})

    async def publish_due(self, limit: int = 500) -> int:
        """Publish rows the fast path left behind (older than the grace period)."""
        return await self._publish(CLAIM_DUE, {"grace": self._grace_s, "n": limit})

    async def _publish(self, claim: Any, params: dict[str, object]) -> int:
        async with self._engine.begin() as conn:
            await conn.execute(ASYNC_COMMIT)
            rows = (await conn.execute(claim, {**params, "lease": self._lease_s})).mappings().all()
        if not rows:
            return 0
        results = await asyncio.gather(*(self._send(r) for r in rows), return_exceptions=True)
        sent = [r for r, res in zip(rows, results, strict=True) if res is None]
        failed = [r["id"] for r, res in zip(rows, results, strict=True) if res is not None]
        async with self._engine.begin() as conn:
            await conn.execute(ASYNC_COMMIT)
            if sent:
                await conn.execute(DELETE_IDS, {"ids": [r["id"] for r in sent]})
                rids = [r["request_id"] for r in sent if r["request_id"]]
                if rids:
                    await conn.execute(MARK_JOBS, {"rids": rids})
            if failed:
                first = next(res for res in results if res is not None)
                await conn.execute(RELEASE_FAILED, {"ids": failed, "err": str(first)[:500]})
        if failed:
            self._quiet.failed(f"{len(failed)} of {len(rows)} rows not published: {first}")
        else:
            self._quiet.succeeded()
        return len(sent)

    async def _send(self, row: RowMapping) -> None:
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
