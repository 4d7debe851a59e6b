"""What runs beside a group of jobs: its heartbeat, and the timer that writes its events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from db import jobs
from db.errors import describe
from streams.claimed import ClaimedJob
from streams.progress import ASYNC_COMMIT, HOLD_S, ProgressEmitter

log = logging.getLogger(__name__)


async def write_held(engine: AsyncEngine, group: Sequence[ClaimedJob], done: asyncio.Event) -> None:
    """A group's events timer: what its jobs emitted goes out every ``HOLD_S`` in one
    transaction while the group runs (its final transaction writes the rest)."""
    emitters = [job.emitter for job in group]
    while True:
        try:
            await asyncio.wait_for(done.wait(), HOLD_S)
            return
        except TimeoutError:
            pass
        try:
            await ProgressEmitter.write_held_of(engine, emitters)
        except Exception as exc:  # an outage, or the final transaction holds a row
            log.debug("held events of %d jobs wait for the next write: %s", len(group), exc)


async def keep_alive(
    engine: AsyncEngine, interval_s: float | None, group: Sequence[ClaimedJob], done: asyncio.Event
) -> None:
    """Heartbeat the claimed jobs until ``done``, also while they wait for the previous
    request or run a long step that emits no event: the reconciler requeues a running
    job whose heartbeat is older than SYNCBUS_JOB_STALE_AFTER_S."""
    if interval_s is None:
        return
    while True:
        try:
            await asyncio.wait_for(done.wait(), interval_s)
            return
        except TimeoutError:
            pass
        try:
            async with engine.begin() as conn:
                await conn.execute(ASYNC_COMMIT)
                await jobs.heartbeat_all(conn, [(job.id, job.attempt) for job in group])
        except Exception as exc:  # the next beat tries again; the job reports failures
            log.warning("heartbeat of %d jobs failed: %s", len(group), describe(exc))
