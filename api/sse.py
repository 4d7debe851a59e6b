"""A job's progress as Server-Sent Events: stored events first, then live, resumable by id."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from api.live import STORED, ProgressHub
from api.metrics_http import SSE_CLIENTS
from api.security import ascii_int
from db import event_log, jobs
from db.engine import autocommit
from db.tables import TERMINAL_STATUSES

TERMINAL_EVENTS = ("complete", "error")


def _frame(seq: int, event: str, data: dict[str, Any]) -> dict[str, str]:
    return {"id": str(seq), "event": event, "data": orjson.dumps(data).decode()}


def parse_last_event_id(value: str | None) -> int | None:
    """``Last-Event-ID`` as a sequence number (absent or empty: from the start); None when
    it is not one (ASCII digits only: this stream only ever sends those)."""
    if value is None or not value.strip():
        return 0
    return ascii_int(value.strip(), max_digits=9)


async def job_events(
    engine: AsyncEngine,
    hub: ProgressHub,
    job_id: uuid.UUID,
    *,
    after: int,
    finished: bool,
    inactivity_timeout_s: float,
) -> AsyncIterator[dict[str, str]]:
    """Yield SSE frames until the job ends, the stream idles out, or the client leaves.

    The live subscription starts before the replay query, so nothing published in between
    is missed; sequence numbers drop the overlap. A gap in the live sequence (a lost or
    late message) is filled from PostgreSQL, which holds every event, as are events the
    topic has not brought when api/stored_events.py finds them stored.
    """
    queue = hub.subscribe(job_id)
    SSE_CLIENTS.inc()
    last = after
    try:
        yield _frame(
            last,
            "connected",
            {"job_id": str(job_id), "message": "Connected to sync progress stream"},
        )

        async def from_db() -> AsyncIterator[dict[str, str]]:
            nonlocal last
            async with autocommit(engine) as conn:
                rows = await event_log.events_after(conn, job_id, last)
            for row in rows:
                last = row["seq"]
                yield _frame(row["seq"], row["type"], row["data"])

        ended = False
        async for frame in from_db():
            yield frame
            ended = frame["event"] in TERMINAL_EVENTS
        # A final event last may be an earlier attempt's (the job was replayed): the stream
        # ends only if the job has ended.
        if finished or (ended and await _has_ended(engine, job_id)):
            return
        idle_since = time.monotonic()
        while True:
            idle_left = inactivity_timeout_s - (time.monotonic() - idle_since)
            try:
                event = await asyncio.wait_for(queue.get(), timeout=max(0.0, idle_left))
            except TimeoutError:
                event = None
            if event is not None and not event.get(STORED) and event.get("seq") == last + 1:
                last = int(event["seq"])
                yield _frame(last, str(event["type"]), dict(event.get("data") or {}))
                idle_since = time.monotonic()
                if event["type"] in TERMINAL_EVENTS:
                    return
                continue
            if event is not None and int(event.get("seq", 0)) > last:
                # A gap in the live sequence, or events stored that the topic has not
                # brought (api/stored_events.py): PostgreSQL has them.
                async for frame in from_db():
                    yield frame
                    idle_since = time.monotonic()
                    if frame["event"] in TERMINAL_EVENTS:
                        return
            if time.monotonic() - idle_since > inactivity_timeout_s:
                minutes = inactivity_timeout_s / 60
                yield _frame(
                    last, "timeout", {"message": f"Stream timeout after {minutes:g} minutes"}
                )
                return
    finally:
        SSE_CLIENTS.dec()
        hub.unsubscribe(job_id, queue)


async def _has_ended(engine: AsyncEngine, job_id: uuid.UUID) -> bool:
    async with autocommit(engine) as conn:
        job = await jobs.get_job(conn, job_id)
    return job is None or job["status"] in TERMINAL_STATUSES
