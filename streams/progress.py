"""Progress events of one job: persisted to sync_events, then published to the progress topic."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db import jobs
from producers.kafka import AsyncProducer
from schemas.events import ProgressEvent, ProgressType

# A progress event need not wait for its WAL flush: losing the last few in a crash only
# loses a percentage, and the job's final state is committed durably (which also flushes
# every earlier event). It saves an fsync per event on the worker's critical path.
ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")


class ProgressEmitter:
    """Numbers a job's events (``seq`` is the SSE ``id:``) and delivers them."""

    def __init__(
        self,
        engine: AsyncEngine,
        producer: AsyncProducer,
        topic: str,
        *,
        job_id: uuid.UUID,
        request_id: str,
        domain: str,
        first_seq: int,
        attempt: int,
        progress_interval_s: float = 0.0,
    ) -> None:
        self._engine = engine
        self.attempt = attempt  # events and heartbeats only count while this attempt runs
        self._producer = producer
        self._topic = topic
        self.job_id = job_id
        self.request_id = request_id
        self.domain = domain
        self._seq = first_seq - 1
        self._pending: list[ProgressEvent] = []
        self._progress_interval_s = progress_interval_s
        self._last_progress = float("-inf")

    def _make(self, type_: ProgressType, data: dict[str, Any]) -> ProgressEvent:
        self._seq += 1
        return ProgressEvent(
            request_id=self.request_id,
            job_id=self.job_id,
            domain=self.domain,
            seq=self._seq,
            type=type_,
            data=data,
        )

    async def emit(self, type_: ProgressType, data: dict[str, Any]) -> None:
        """Persist in its own short transaction, then publish. Raises AttemptSuperseded
        (writing nothing) once this attempt no longer runs the job."""
        event = self._make(type_, data)
        async with self._engine.begin() as conn:
            await conn.execute(ASYNC_COMMIT)
            # First: it locks the job's row while this attempt runs it, so the reconciler
            # cannot requeue the job between this check and the insert.
            if not await jobs.heartbeat(conn, self.job_id, self.attempt):
                raise jobs.AttemptSuperseded(self.job_id, self.attempt)
            await jobs.insert_event(conn, event)
        self._publish(event)

    async def progress(
        self,
        processed: int,
        total: int | None,
        extra: dict[str, Any] | None = None,
        *,
        force: bool = False,
    ) -> None:
        """A ``progress`` event (with ``extra`` facts), at most once per interval; the last
        one (processed == total) and a ``force``d one always go out."""
        now = time.monotonic()
        due = force or processed == total
        if not due and now - self._last_progress < self._progress_interval_s:
            return
        self._last_progress = now
        await self.emit("progress", {"processed": processed, "total": total, **(extra or {})})

    async def log(self, message: str) -> None:
        await self.emit("log", {"message": message})

    async def emit_in(
        self, conn: AsyncConnection, type_: ProgressType, data: dict[str, Any]
    ) -> None:
        """Persist inside the caller's transaction; published by :meth:`flush` after commit."""
        event = self._make(type_, data)
        await jobs.insert_event(conn, event)
        self._pending.append(event)

    def flush(self) -> None:
        for event in self._pending:
            self._publish(event)
        self._pending.clear()

    def discard(self) -> None:
        """The transaction rolled back: forget its events, and their numbers."""
        if self._pending:
            self._seq = self._pending[0].seq - 1
        self._pending.clear()

    def _publish(self, event: ProgressEvent) -> None:
        self._producer.send_nowait(
            self._topic, event.to_json(), key=str(event.job_id), headers=event.kafka_headers()
        )
