"""One look at PostgreSQL for all of an api's live SSE streams: what Kafka did not bring.

Every event is stored before it is published, so a stream whose live messages were lost
or are late finds them in ``sync_events``. One statement per interval asks for the latest
stored event of every job that has a stream open, and tells the streams that are behind;
a stream of its own polling, 1,000 streams would cost 1,000 queries a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from api.live import ProgressHub
from db import event_log
from db.engine import autocommit
from producers.quiet import Quiet

log = logging.getLogger(__name__)


async def check_stored_events(
    engine: AsyncEngine, hub: ProgressHub, earlier: dict[uuid.UUID, int]
) -> dict[uuid.UUID, int]:
    """Tell each watched job's streams how far PostgreSQL held its events at the previous
    look (``earlier``), and return how far it holds them now. An event stored since then
    is most likely on its way over Kafka: it is left to the next look."""
    watched = hub.watched_jobs()
    if not watched:
        return {}
    async with autocommit(engine) as conn:
        latest = await event_log.latest_seqs(conn, watched)
    for job_id, seq in latest.items():
        if job_id in earlier:
            hub.stored(job_id, min(seq, earlier[job_id]))
    return latest


async def watch_stored_events(
    engine: AsyncEngine, hub: ProgressHub, interval_s: float, stop: asyncio.Event
) -> None:
    """:func:`check_stored_events` every ``interval_s`` until ``stop`` is set; an outage
    or a look that hangs (a lock, a lost connection) is logged, quietly, and tried again."""
    quiet = Quiet(log, "looking up stored events for SSE streams")
    earlier: dict[uuid.UUID, int] = {}
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
        if stop.is_set():
            return
        try:
            async with asyncio.timeout(max(5.0, 5 * interval_s)):
                earlier = await check_stored_events(engine, hub, earlier)
        except Exception as exc:
            quiet.failed(f"{type(exc).__name__}: {str(exc).strip()[:200]}")
        else:
            quiet.succeeded()


def log_if_it_ended(task: asyncio.Task[None]) -> None:
    """The watch runs for the api's life: say so when it ends by itself."""
    if not task.cancelled() and task.exception() is not None:
        log.error("SSE streams stopped looking for stored events", exc_info=task.exception())
