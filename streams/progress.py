"""Progress events of one job: persisted to sync_events, then published to the progress topic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db import event_log, jobs
from producers.kafka import AsyncProducer
from schemas.events import ProgressEvent, ProgressType

# A progress event need not wait for its WAL flush: losing the last few in a crash only
# loses a percentage, and the job's final state is committed durably (which also flushes
# every earlier event). It saves an fsync per event on the worker's critical path.
ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")
# Events a job emits in quick succession are written together: each write is a transaction
# of its own (some six round trips), and a short job (a one-entry push) would otherwise
# spend most of its time on them. An event waits at most this long (then a timer writes
# it), or less: until a due event, or the job's final transaction, which writes it.
HOLD_S = 0.05
# The timer's write must never wait on the job's own final transaction (which locks the
# job's row): it gives up instead, and that transaction writes the held events itself.
TIMER_LOCK_TIMEOUT = text("SET LOCAL lock_timeout = '20ms'")

log = logging.getLogger(__name__)


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
        defer: bool = False,
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
        # Held: emitted, not yet written. With an interval of 0 every event goes at once.
        self._hold_s = min(progress_interval_s, HOLD_S)
        # Deferred: an event not due at once is held without a timer of its own; the job
        # runs in a group whose timer writes every job's held events in one transaction
        # (write_held_of), or its final transaction does.
        self._defer = defer
        self._held: list[ProgressEvent] = []
        self._from_held = 0  # how many of _pending were held before the final transaction
        self._writing = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self._timer_sleeping = False
        self._superseded = False

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

    async def emit(self, type_: ProgressType, data: dict[str, Any], *, now: bool = False) -> None:
        """Persist in a short transaction of its own, then publish; held up to ``HOLD_S``
        unless ``now``, to be written with the events after it. Raises AttemptSuperseded
        (writing nothing) once this attempt no longer runs the job."""
        if self._superseded:
            raise jobs.AttemptSuperseded(self.job_id, self.attempt)
        self._held.append(self._make(type_, data))
        if not now and self._defer:
            return
        if not now and self._hold_s > 0:
            self._write_later()
            return
        async with self._writing:
            await self._write_held(timer=False)

    async def _write_held(self, *, timer: bool) -> None:
        """Write and publish the held events (the caller holds ``_writing``)."""
        if self._held:
            await _write_held_together(self._engine, [self], timer=timer)
        if self._superseded:
            raise jobs.AttemptSuperseded(self.job_id, self.attempt)

    @staticmethod
    async def write_held_of(engine: AsyncEngine, emitters: list[ProgressEmitter]) -> None:
        """Write the held events of several jobs (a group's) in one transaction, then
        publish them; a job whose attempt was superseded is left out. Gives up, writing
        nothing, when the group's final transaction holds a job's row (it writes them)."""
        waiting = [e for e in emitters if e._held and not e._superseded]
        if not waiting:
            return
        async with contextlib.AsyncExitStack() as locks:
            for emitter in waiting:
                await locks.enter_async_context(emitter._writing)
            await _write_held_together(engine, waiting, timer=True)

    def _write_later(self) -> None:
        if self._timer is None or self._timer.done():
            self._timer = asyncio.get_running_loop().create_task(self._timer_write())

    async def _timer_write(self) -> None:
        self._timer_sleeping = True
        try:
            await asyncio.sleep(self._hold_s)
        finally:
            self._timer_sleeping = False
        async with self._writing:
            try:
                await self._write_held(timer=True)
            except jobs.AttemptSuperseded:
                pass  # the job's next emit raises it
            except Exception as exc:  # an outage, or the final transaction holds the row
                log.debug("held events of job %s wait for the next write: %s", self.job_id, exc)

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
        data = {"processed": processed, "total": total, **(extra or {})}
        await self.emit("progress", data, now=due)

    async def log(self, message: str) -> None:
        await self.emit("log", {"message": message})

    async def emit_in(
        self, conn: AsyncConnection, type_: ProgressType, data: dict[str, Any]
    ) -> None:
        """Persist inside the caller's transaction (after any held events); published by
        :meth:`flush` after commit."""
        await self.emit_all_in(conn, [(type_, data)])

    async def emit_all_in(
        self, conn: AsyncConnection, events: list[tuple[ProgressType, dict[str, Any]]]
    ) -> None:
        """:meth:`emit_in` for several events, written with the held ones in one statement."""
        written: list[ProgressEvent] = []
        if self._held:
            # The timer, if it is writing, gives up within its lock timeout: this
            # transaction may hold the job's row.
            async with self._writing:
                written, self._held = self._held, []
                self._from_held += len(written)
        own = [self._make(type_, data) for type_, data in events]
        await event_log.insert_events(conn, [*written, *own])
        self._pending.extend(written)
        self._pending.extend(own)

    def flush(self) -> None:
        """The caller's transaction committed: publish its events."""
        for event in self._pending:
            self._publish(event)
        self._pending.clear()
        self._from_held = 0
        if self._timer is not None and self._timer_sleeping:
            self._timer.cancel()

    def discard(self) -> None:
        """The transaction rolled back: forget its own events, and their numbers; events
        held before it are held again (the next transaction writes them)."""
        held, own = self._pending[: self._from_held], self._pending[self._from_held :]
        if own:
            self._seq = own[0].seq - 1
        self._held = [*held, *self._held]
        self._pending.clear()
        self._from_held = 0

    def _publish(self, event: ProgressEvent) -> None:
        self._producer.send_nowait(
            self._topic, event.to_json(), key=str(event.job_id), headers=event.kafka_headers()
        )


async def _write_held_together(
    engine: AsyncEngine, emitters: list[ProgressEmitter], *, timer: bool
) -> None:
    """One transaction for the held events of ``emitters`` (their ``_writing`` locks are
    held), then publish them. An emitter whose attempt no longer runs its job is marked
    superseded and its events dropped. ``timer``: give up rather than wait on a job row."""
    written: list[tuple[ProgressEmitter, list[ProgressEvent]]] = []
    async with engine.begin() as conn:
        await conn.execute(ASYNC_COMMIT)
        if timer:
            await conn.execute(TIMER_LOCK_TIMEOUT)
        # First: it locks the jobs' rows while these attempts run them, so the reconciler
        # cannot requeue a job between this check and the insert.
        alive = await jobs.heartbeat(conn, [(e.job_id, e.attempt) for e in emitters])
        for emitter in emitters:
            if (emitter.job_id, emitter.attempt) in alive:
                written.append((emitter, list(emitter._held)))
            else:
                emitter._superseded = True
                emitter._held.clear()
        await event_log.insert_events(conn, [e for _, events in written for e in events])
    for emitter, events in written:
        del emitter._held[: len(events)]
        for event in events:
            emitter._publish(event)
