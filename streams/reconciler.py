"""The reconciler: no accepted job is lost, even when the broker forgets everything."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from db import claims, jobs, outbox_rows, payloads, rate_limit
from schemas.topics import Topics

log = logging.getLogger(__name__)


class Reconciler:
    """Requeues jobs whose worker vanished, re-publishes queued jobs nobody claimed, and
    drops request bodies past their retention and rate-limit buckets that are full again."""

    def __init__(
        self,
        engine: AsyncEngine,
        topics: Topics,
        *,
        unclaimed_after_s: float,
        stale_after_s: float,
        payload_retention_s: float,
    ) -> None:
        self._engine = engine
        self._topics = topics
        self._unclaimed_after_s = unclaimed_after_s
        self._stale_after_s = stale_after_s
        self._payload_retention_s = payload_retention_s

    async def run_once(self) -> list[int]:
        """One pass; returns the outbox ids it wrote (the caller's relay publishes them)."""
        outbox_ids: list[int] = []
        async with self._engine.begin() as conn:
            await payloads.drop_old_payloads(conn, self._payload_retention_s)
            await rate_limit.forget_drained(conn)
            requeued = await jobs.requeue_stale_running(conn, self._stale_after_s)
            if requeued:
                log.warning("requeued %d jobs whose worker stopped heartbeating", requeued)
            rows = await jobs.unpublished_queued(conn, self._unclaimed_after_s)
            for row in rows:
                request = claims.request_of(row)
                outbox_ids.append(await outbox_rows.add_request_outbox(conn, self._topics, request))
            if rows:
                await jobs.mark_published(conn, [r["request_id"] for r in rows])
                log.info("re-published %d queued jobs nobody claimed", len(rows))
        return outbox_ids
