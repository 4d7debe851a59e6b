"""A job's end in its transaction: its final status and counts, closing events and audit row."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db import event_log, jobs
from db.errors import is_transient
from schemas.events import ProgressType
from schemas.jobs import JobCounts
from streams.claimed import ClaimedJob, Failure
from streams.domains.base import Outcome
from streams.job_publish import JobPublisher

log = logging.getLogger(__name__)


async def record_success(
    publish: JobPublisher, job: ClaimedJob, outcome: Outcome, conn: AsyncConnection
) -> None:
    """``job`` applied with ``outcome``: it succeeded, its summary and ``complete`` event."""
    await jobs.finish(
        conn,
        job.id,
        attempt=job.attempt,
        status="succeeded",
        counts=outcome.counts,
        result=outcome.result,
    )
    lines = [*outcome.summary, "=== Sync Complete ===", *outcome.epilogue]
    events: list[tuple[ProgressType, dict[str, Any]]] = [
        ("log", {"message": line}) for line in lines
    ]
    complete = {"status": "completed", "success": outcome.problem is None, "error": outcome.problem}
    events.append(("complete", {**complete, "counts": outcome.counts.model_dump()}))
    await job.emitter.emit_all_in(conn, events)
    audit = publish.audit_event(job.request, job.id, True, outcome.counts.model_dump())
    await event_log.insert_audit(conn, audit)
    job.outcome, job.audit = outcome, audit


async def record_failure(publish: JobPublisher, job: ClaimedJob, conn: AsyncConnection) -> None:
    """``job.failure`` is the job's end: it failed, its ``error`` event."""
    assert job.failure is not None
    message = job.failure.message
    audit = publish.audit_event(job.request, job.id, False, {"error": message})
    await _mark_failed(conn, job, job.failure)
    error = {"status": "failed", "success": False, "error": message}
    await job.emitter.emit_all_in(
        conn, [("log", {"message": f"Sync failed: {message}"}), ("error", error)]
    )
    await event_log.insert_audit(conn, audit)
    job.audit = audit


async def record_failure_after_bug(
    engine: AsyncEngine,
    publish: JobPublisher,
    group: Sequence[ClaimedJob],
    exc: Exception,
    dead_letter: Callable[[ClaimedJob], Awaitable[None]],
) -> None:
    """A bug stopped the run before its commit (recording a failure, the commit itself).
    The jobs that had failed (or, when none had, every job) end failed, each in a
    transaction of its own, with the message they had (details and result left out: they
    may be what could not be stored); the others go back to the queue, marked superseded so
    that their request claims them again; then the failed ones are dead-lettered (which
    waits for the broker). Left running, the reconciler would requeue them, and the same
    bug would send them to the dead-letter topic again, every few minutes, for ever.
    Raises a transient error (the database went away meanwhile): the caller gives back the
    attempts still running; the letters of the jobs that ended are sent first."""
    none_had_failed = all(job.failure is None for job in group)
    recorded = []
    try:
        for job in group:
            if job.failure is not None:
                job.failure = Failure(job.failure.message)
            elif none_had_failed:
                job.failure = Failure.internal(exc, job.id)
            else:
                continue
            if await _record_alone(engine, publish, job):
                recorded.append(job)
        for job in group:
            if job.failure is None and not job.superseded:
                await _give_back(engine, job)
                job.superseded = True
    finally:
        for job in recorded:
            await dead_letter(job)


async def _record_alone(engine: AsyncEngine, publish: JobPublisher, job: ClaimedJob) -> bool:
    """Record ``job.failure`` in a transaction of its own; if that fails, a bare 'internal
    error' in its place, and if even that fails (its events or audit row may be what cannot
    be stored), the job's row alone. False: the job is no longer this attempt's (it ended,
    or another attempt owns it). True otherwise, even when nothing could be stored (the job
    then stays running for the reconciler): its request is acked, so it is dead-lettered."""
    try:
        return await _record(engine, publish, job)
    except Exception as exc:
        _unless_transient(exc)
        log.exception("job %s: its failure could not be recorded", job.id)
        job.failure = Failure.internal(exc, job.id)
    try:
        return await _record(engine, publish, job)
    except Exception as exc:
        _unless_transient(exc)
        log.exception("job %s: not even a bare internal error could be recorded", job.id)
    try:
        async with engine.begin() as conn:
            await _mark_failed(conn, job, job.failure)
    except jobs.AttemptSuperseded:
        job.superseded, job.failure = True, None
        return False
    except Exception as exc:
        _unless_transient(exc)
        log.exception("job %s: not even its row could be marked failed", job.id)
    return True


async def _mark_failed(conn: AsyncConnection, job: ClaimedJob, failure: Failure) -> None:
    """The job's row: failed, with ``failure``'s message, details and result."""
    await jobs.finish(
        conn,
        job.id,
        attempt=job.attempt,
        status="failed",
        counts=JobCounts(errors=1),
        result=failure.result,
        error_message=failure.message,
        error_details=failure.details,
    )


def _unless_transient(exc: Exception) -> None:
    """An outage is waited out by the caller, never recorded as the job's failure."""
    if is_transient(exc):
        raise exc


async def _record(engine: AsyncEngine, publish: JobPublisher, job: ClaimedJob) -> bool:
    try:
        async with engine.begin() as conn:
            await record_failure(publish, job, conn)
    except jobs.AttemptSuperseded:
        job.emitter.discard()
        job.superseded, job.failure = True, None
        return False
    except Exception:
        job.emitter.discard()
        raise
    try:
        job.emitter.flush()
        if job.audit is not None:
            publish.audit(job.audit)
    except Exception:  # committed: never the job's failure
        log.exception("job %s: its events were not all published", job.id)
    return True


async def _give_back(engine: AsyncEngine, job: ClaimedJob) -> None:
    try:
        async with engine.begin() as conn:
            back = await jobs.requeue_attempt(conn, job.id, job.attempt)
        if back:
            log.info("job %s goes back to the queue: another job of its group failed", job.id)
    except Exception:
        log.exception("job %s could not go back to the queue; the reconciler will", job.id)
