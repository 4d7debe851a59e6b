"""Read-only queries for looking into one job: its row, events, audit rows and reruns."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from db.tables import audit_log, sync_events, sync_jobs


async def find_job(conn: AsyncConnection, ident: uuid.UUID | int) -> RowMapping | None:
    """The job by its id, or by its number (the integer people and seed 002 use)."""
    column = sync_jobs.c.id if isinstance(ident, uuid.UUID) else sync_jobs.c.number
    return (await conn.execute(select(sync_jobs).where(column == ident))).mappings().first()


async def job_events(conn: AsyncConnection, job_id: uuid.UUID) -> Sequence[RowMapping]:
    stmt = (
        select(sync_events.c.seq, sync_events.c.type, sync_events.c.data, sync_events.c.created_at)
        .where(sync_events.c.job_id == job_id)
        .order_by(sync_events.c.seq)
    )
    return (await conn.execute(stmt)).mappings().all()


async def job_audit(conn: AsyncConnection, job_id: uuid.UUID) -> Sequence[RowMapping]:
    stmt = (
        select(
            audit_log.c.occurred_at,
            audit_log.c.action,
            audit_log.c.domain,
            audit_log.c.actor,
            audit_log.c.data,
        )
        .where(audit_log.c.job_id == job_id)
        .order_by(audit_log.c.occurred_at, audit_log.c.id)
    )
    return (await conn.execute(stmt)).mappings().all()


async def reruns_of(conn: AsyncConnection, request_id: str) -> Sequence[RowMapping]:
    """Jobs started by ``syncbus replay --rerun`` from this request (``params.rerun_of``)."""
    stmt = (
        select(sync_jobs.c.id, sync_jobs.c.request_id, sync_jobs.c.status, sync_jobs.c.created_at)
        .where(sync_jobs.c.params["rerun_of"].astext == request_id)
        .order_by(sync_jobs.c.created_at)
    )
    return (await conn.execute(stmt)).mappings().all()
