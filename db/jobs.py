"""The job store: sync_jobs rows from insert and lookup through heartbeats to finish or requeue."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import TextClause, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from db.payloads import INSERT_PAYLOAD
from db.tables import sync_jobs
from schemas.events import SyncRequest
from schemas.jobs import JobCounts


class ActiveJobExists(Exception):
    """An exclusive job is already queued or running for this domain and scope."""

    def __init__(self, job_id: uuid.UUID | None) -> None:
        super().__init__(f"sync {job_id} is already queued or running")
        self.job_id = job_id


async def insert_job(
    conn: AsyncConnection,
    request: SyncRequest,
    *,
    job_id: uuid.UUID,
    payload_sha256: str | None,
    body: str | None,
    exclusive: bool = False,
) -> tuple[RowMapping, bool]:
    """Create the job for ``request`` unless its ``request_id`` exists; return (job, created).

    ``body`` is the payload as JSON text; PostgreSQL parses and stores it as jsonb.

    With ``exclusive``, raises ActiveJobExists when another exclusive job of the same domain
    and scope is queued or running (a unique index decides, so concurrent triggers agree).
    """
    stmt = (
        pg_insert(sync_jobs)
        .values(
            id=job_id,
            request_id=request.request_id,
            domain=request.domain,
            scope=request.scope,
            mode=request.mode,
            trigger=request.trigger,
            actor=request.actor,
            params=request.params,
            payload_sha256=payload_sha256,
            exclusive=exclusive,
        )
        .on_conflict_do_nothing()
        .returning(*sync_jobs.c)
    )
    row = (await conn.execute(stmt)).mappings().first()
    if row is None:
        existing = await get_job_by_request_id(conn, request.request_id)
        if existing is not None:
            return existing, False
        active = await active_exclusive_job(conn, request.domain, request.scope)
        # None: the active job finished in between; the caller may simply try again.
        raise ActiveJobExists(active["id"] if active is not None else None)
    if body is not None:
        await conn.execute(INSERT_PAYLOAD, {"job_id": job_id, "body": body})
    return row, True


async def active_exclusive_job(conn: AsyncConnection, domain: str, scope: str) -> RowMapping | None:
    stmt = select(sync_jobs).where(
        sync_jobs.c.domain == domain,
        sync_jobs.c.scope == scope,
        sync_jobs.c.exclusive,
        sync_jobs.c.status.in_(("queued", "running")),
    )
    return (await conn.execute(stmt)).mappings().first()


async def queued_twin(
    conn: AsyncConnection, domain: str, scope: str, params: dict[str, Any]
) -> RowMapping | None:
    """A job of ``domain`` and ``scope`` with these ``params`` that has not started, for a
    trigger to join rather than queue the same work twice. Holds a lock on the scope until
    the caller's transaction ends, so concurrent triggers agree."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended('syncbus.queued:' || :key, 0))"),
        {"key": f"{domain}:{scope}"},
    )
    stmt = (
        select(sync_jobs)
        .where(
            sync_jobs.c.domain == domain,
            sync_jobs.c.scope == scope,
            sync_jobs.c.status == "queued",
            sync_jobs.c.params == params,
        )
        .order_by(sync_jobs.c.created_at)
        .limit(1)
    )
    return (await conn.execute(stmt)).mappings().first()


async def get_job(conn: AsyncConnection, job_id: uuid.UUID) -> RowMapping | None:
    return (
        (await conn.execute(select(sync_jobs).where(sync_jobs.c.id == job_id))).mappings().first()
    )


async def get_job_by_request_id(conn: AsyncConnection, request_id: str) -> RowMapping | None:
    stmt = select(sync_jobs).where(sync_jobs.c.request_id == request_id)
    return (await conn.execute(stmt)).mappings().first()


async def list_jobs(
    conn: AsyncConnection,
    *,
    domain: str | None,
    status: str | None,
    before: datetime | None,
    limit: int,
) -> Sequence[RowMapping]:
    """The newest ``limit`` jobs created before ``before``, and when that fills the page,
    every other job created at the same instant as its last one: jobs one transaction
    created (a scheduler tick) share ``created_at``, and the next page, created before
    that instant, would skip them."""
    stmt = select(sync_jobs)
    if domain:
        stmt = stmt.where(sync_jobs.c.domain == domain)
    if status:
        stmt = stmt.where(sync_jobs.c.status == status)
    if before:
        stmt = stmt.where(sync_jobs.c.created_at < before)
    newest_first = (sync_jobs.c.created_at.desc(), sync_jobs.c.id.desc())
    rows = list((await conn.execute(stmt.order_by(*newest_first).limit(limit))).mappings())
    if len(rows) == limit:
        last = rows[-1]
        tied = stmt.where(sync_jobs.c.created_at == last["created_at"], sync_jobs.c.id < last["id"])
        rows.extend((await conn.execute(tied.order_by(sync_jobs.c.id.desc()))).mappings())
    return rows


async def requeue_attempt(conn: AsyncConnection, job_id: uuid.UUID, attempt: int) -> bool:
    """Give a running attempt back to the queue (its worker is stopping mid-run): the
    request's message, not yet acked, is redelivered in order and claims it again. It
    counts as just published, so the reconciler does not add a copy at once."""
    stmt = (
        update(sync_jobs)
        .where(is_attempt(job_id, attempt))
        .values(status="queued", updated_at=func.now(), published_at=func.now())
    )
    return bool((await conn.execute(stmt)).rowcount)


def _heartbeat_sql(lock: Literal["FOR UPDATE OF j", "FOR UPDATE OF j SKIP LOCKED"]) -> TextClause:
    """Mark the running ones of the ``:ids``/``:attempts`` pairs alive, their rows locked
    with ``lock`` in the pairs' order; returns the ``(job, attempt)`` pairs marked."""
    return text(
        f"""
        WITH live AS (
            SELECT j.id FROM sync_jobs j
            JOIN unnest(CAST(:ids AS uuid[]), CAST(:attempts AS int[])) WITH ORDINALITY
                 AS a(id, attempt, n) ON a.id = j.id AND a.attempt = j.attempt
            WHERE j.status = 'running'
            ORDER BY a.n
            {lock}
        )
        UPDATE sync_jobs j SET heartbeat_at = now() FROM live WHERE j.id = live.id
        RETURNING j.id, j.attempt
        """  # noqa: S608 (``lock`` is one of the two constants below)
    )


HEARTBEAT = _heartbeat_sql("FOR UPDATE OF j")
HEARTBEAT_ALL = _heartbeat_sql("FOR UPDATE OF j SKIP LOCKED")


def _attempt_params(attempts: Sequence[tuple[uuid.UUID, int]]) -> dict[str, list[Any]]:
    return {"ids": [job for job, _ in attempts], "attempts": [n for _, n in attempts]}


async def heartbeat(
    conn: AsyncConnection, attempts: Sequence[tuple[uuid.UUID, int]]
) -> set[tuple[uuid.UUID, int]]:
    """The worker is still on these attempts (the reconciler requeues jobs that go quiet),
    in one statement; returns the ``(job, attempt)`` pairs that still run their jobs. A
    worker that lost a job to the reconciler must not keep the new attempt looking alive.
    The rows are locked in the given order (a group's, as its final transaction locks
    them) and stay locked until the caller commits, so the reconciler cannot requeue the
    jobs in between."""
    rows = await conn.execute(HEARTBEAT, _attempt_params(attempts))
    return {(row[0], row[1]) for row in rows}


async def heartbeat_all(conn: AsyncConnection, attempts: Sequence[tuple[uuid.UUID, int]]) -> None:
    """:func:`heartbeat` for a group's jobs, in one statement that never waits: a row the
    group's own transaction holds (it is writing that job now) is skipped, which also
    keeps the two from deadlocking over the rows' order."""
    await conn.execute(HEARTBEAT_ALL, _attempt_params(attempts))


class AttemptSuperseded(Exception):
    """This attempt no longer owns its job (the reconciler requeued it as stale, and maybe
    another attempt runs it now): whatever it wrote must roll back."""

    def __init__(self, job_id: uuid.UUID, attempt: int) -> None:
        super().__init__(f"attempt {attempt} of job {job_id} was superseded")
        self.job_id = job_id
        self.attempt = attempt


def is_attempt(job_id: uuid.UUID, attempt: int) -> Any:
    """The condition: ``job_id``'s row, while ``attempt`` runs it."""
    return (
        (sync_jobs.c.id == job_id)
        & (sync_jobs.c.attempt == attempt)
        & (sync_jobs.c.status == "running")
    )


async def finish(
    conn: AsyncConnection,
    job_id: uuid.UUID,
    *,
    attempt: int,
    status: str,
    counts: JobCounts,
    result: dict[str, Any] | None = None,
    error_message: str | None = None,
    error_details: dict[str, Any] | None = None,
) -> None:
    values: dict[str, Any] = {
        "status": status,
        # now() is when the transaction began (before the apply); the job ends now.
        "finished_at": func.clock_timestamp(),
        "updated_at": func.clock_timestamp(),
        "error_message": error_message,
        "error_details": error_details,
        **counts.model_dump(),
    }
    if result is not None:
        values["result"] = result
    stmt = update(sync_jobs).where(is_attempt(job_id, attempt)).values(**values)
    if not (await conn.execute(stmt)).rowcount:
        raise AttemptSuperseded(job_id, attempt)


async def mark_published(conn: AsyncConnection, request_ids: Sequence[str]) -> None:
    stmt = (
        update(sync_jobs)
        .where(sync_jobs.c.request_id.in_(request_ids))
        .values(published_at=func.now())
    )
    await conn.execute(stmt)


async def requeue_stale_running(conn: AsyncConnection, stale_after_s: float) -> int:
    """Give jobs whose worker vanished mid-run back to the queue."""
    # A locked row is an attempt committing its writes (its final transaction's
    # jobs.finish holds the row): alive.
    stmt = text(
        "UPDATE sync_jobs SET status = 'queued', updated_at = now(), published_at = NULL "
        "WHERE id IN (SELECT id FROM sync_jobs WHERE status = 'running' "
        "AND heartbeat_at < now() - make_interval(secs => :s) FOR UPDATE SKIP LOCKED)"
    )
    return (await conn.execute(stmt, {"s": stale_after_s})).rowcount


async def unpublished_queued(
    conn: AsyncConnection, older_than_s: float, limit: int = 500
) -> Sequence[RowMapping]:
    """Queued jobs nobody claimed (published too long ago, or never) and not in the outbox."""
    stmt = text(
        "SELECT id, request_id, domain, scope, mode, trigger, actor, params, payload_sha256 "
        "FROM sync_jobs j WHERE status = 'queued' "
        "AND coalesce(published_at, created_at) < now() - make_interval(secs => :s) "
        "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.request_id = j.request_id) "
        "ORDER BY created_at LIMIT :n FOR UPDATE SKIP LOCKED"
    )
    return (await conn.execute(stmt, {"s": older_than_s, "n": limit})).mappings().all()
