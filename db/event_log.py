"""The event log in PostgreSQL: a job's progress events (sync_events) and audit rows (audit_log)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from db.tables import audit_log, sync_events
from schemas.events import AuditEvent, ProgressEvent

INSERT_EVENTS = pg_insert(sync_events).on_conflict_do_nothing()


async def insert_events(conn: AsyncConnection, events: Sequence[ProgressEvent]) -> None:
    """Persist events (idempotent by job and seq) in one statement."""
    if not events:
        return
    rows = [
        {
            "job_id": e.job_id,
            "seq": e.seq,
            "event_id": e.event_id,
            "type": e.type,
            "data": e.data,
            "created_at": e.occurred_at,
        }
        for e in events
    ]
    # Rows as parameters, not in the statement: a statement with the rows in it would be
    # compiled anew for every call (SQLAlchemy cannot cache one), where this one is cached
    # and psycopg sends the rows in one pipeline.
    await conn.execute(INSERT_EVENTS, rows)


async def events_after(
    conn: AsyncConnection, job_id: uuid.UUID, after_seq: int
) -> Sequence[RowMapping]:
    stmt = (
        select(sync_events.c.seq, sync_events.c.type, sync_events.c.data)
        .where(sync_events.c.job_id == job_id, sync_events.c.seq > after_seq)
        .order_by(sync_events.c.seq)
    )
    return (await conn.execute(stmt)).mappings().all()


# One backward probe of the (job_id, seq) key per job: no job's other events are read.
LATEST_SEQS = text(
    """
    SELECT a.id, (SELECT max(e.seq) FROM sync_events e WHERE e.job_id = a.id) AS seq
    FROM unnest(CAST(:ids AS uuid[])) AS a(id)
    """
)


async def latest_seqs(conn: AsyncConnection, job_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """The number of each job's latest stored event, in one statement (a job with none is
    left out)."""
    rows = await conn.execute(LATEST_SEQS, {"ids": list(job_ids)})
    return {job_id: int(seq) for job_id, seq in rows if seq is not None}


async def latest_event(
    conn: AsyncConnection, job_id: uuid.UUID, type_: str
) -> dict[str, Any] | None:
    """The data of the job's latest event of ``type_``."""
    stmt = (
        select(sync_events.c.data)
        .where(sync_events.c.job_id == job_id, sync_events.c.type == type_)
        .order_by(sync_events.c.seq.desc())
        .limit(1)
    )
    data = (await conn.execute(stmt)).scalar()
    return dict(data) if data is not None else None


async def insert_audit(conn: AsyncConnection, event: AuditEvent) -> None:
    stmt = (
        pg_insert(audit_log)
        .values(
            event_id=event.event_id,
            occurred_at=event.occurred_at,
            domain=event.domain,
            action=event.action,
            actor=event.actor,
            job_id=event.job_id,
            data=event.data,
        )
        .on_conflict_do_nothing(index_elements=[audit_log.c.event_id])
    )
    await conn.execute(stmt)
