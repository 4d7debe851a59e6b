"""The outbox relay: publishes rows written in a job's transaction, then deletes them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from producers.kafka import AsyncProducer

log = logging.getLogger(__name__)

SELECT_DUE = text(
    "SELECT id, topic, request_id, key, value, headers FROM outbox "
    "WHERE created_at < now() - make_interval(secs => :grace) "
    "ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED"
)
SELECT_IDS = text(
    "SELECT id, topic, request_id, key, value, headers FROM outbox WHERE id = ANY(:ids) "
    "ORDER BY id FOR UPDATE SKIP LOCKED"
)
DELETE_IDS = text("DELETE FROM outbox WHERE id = ANY(:ids)")
NOTE_FAILURE = text(
    "UPDATE outbox SET attempts = attempts + 1, last_error = :err WHERE id = ANY(:ids)"
)
# Jobs whose request went out: the reconciler measures "unclaimed" from here.
MARK_JOBS = text(
    "UPDATE sync_jobs SET published_at = now() WHERE request_id = ANY(:rids) AND status = 'queued'"
)


class OutboxRelay:
    """Moves outbox rows to Kafka. Safe to run in several processes at once (row locks)."""

    def __init__(self, engine: AsyncEngine, producer: AsyncProducer, grace_s: float = 2.0) -> None:
        self._engine = engine
        self._producer = producer
        self._grace_s = grace_s

    async def publish_ids(self, ids: Sequence[int]) -> int:
        """Publish just these rows now (the api's fast path right after its commit)."""
        return await self._publish(SELECT_IDS, {"ids": list(ids)})

    async def publish_due(self, limit: int = 500) -> int:
        """Publish rows the fast path left behind (older than the grace period)."""
        return await self._publish(SELECT_DUE, {"grace": self._grace_s, "n": limit})

    async def _publish(self, query: object, params: dict[str, object]) -> int:
        async with self._engine.begin() as conn:
            rows = (await conn.execute(query, params)).mappings().all()  # type: ignore[call-overload]
            if not rows:
                return 0
            ids = [r["id"] for r in rows]
            sends = [
                self._producer.send(
                    r["topic"],
                    bytes(r["value"]),
                    key=r["key"],
                    headers=[(k, v.encode()) for k, v in r["headers"]],
                )
                for r in rows
            ]
            results = await asyncio.gather(*sends, return_exceptions=True)
            sent = [i for i, res in zip(ids, results, strict=True) if res is None]
            failed = [i for i, res in zip(ids, results, strict=True) if res is not None]
            if sent:
                await conn.execute(DELETE_IDS, {"ids": sent})
                rids = [
                    r["request_id"]
                    for r, res in zip(rows, results, strict=True)
                    if res is None and r["request_id"]
                ]
                if rids:
                    await conn.execute(MARK_JOBS, {"rids": rids})
            if failed:
                first = next(r for r in results if r is not None)
                await conn.execute(NOTE_FAILURE, {"ids": failed, "err": str(first)[:500]})
                log.warning("outbox: %d of %d rows not published: %s", len(failed), len(ids), first)
            return len(sent)

    async def run(self, interval_s: float, stop: asyncio.Event) -> None:
        """Publish due rows every ``interval_s`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                while await self.publish_due() > 0:
                    pass
            except Exception:
                log.exception("outbox relay pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
