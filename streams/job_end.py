"""A job's end in its transaction: its final status and counts, closing events and audit row."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from db import event_log, jobs
from schemas.events import ProgressType
from schemas.jobs import JobCounts
from streams.claimed import ClaimedJob
from streams.domains.base import Outcome
from streams.job_publish import JobPublisher


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
    complete = {"status": "completed", "success": True, "error": None}
    events.append(("complete", {**complete, "counts": outcome.counts.model_dump()}))
    await job.emitter.emit_all_in(conn, events)
    audit = publish.audit_event(job.request, job.id, True, outcome.counts.model_dump())
    await event_log.insert_audit(conn, audit)
    job.outcome, job.audit = outcome, audit


async def record_failure(publish: JobPublisher, job: ClaimedJob, conn: AsyncConnection) -> None:
    """``job.failure`` is the job's end: it failed, its ``error`` event."""
    assert job.failure is not None
    failure = job.failure
    audit = publish.audit_event(job.request, job.id, False, {"error": failure.message})
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
    error = {"status": "failed", "success": False, "error": failure.message}
    await job.emitter.emit_all_in(
        conn, [("log", {"message": f"Sync failed: {failure.message}"}), ("error", error)]
    )
    await event_log.insert_audit(conn, audit)
    job.audit = audit
