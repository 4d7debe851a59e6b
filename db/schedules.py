"""The schedule store: CRUD, seeding from configuration, and firing a schedule as a job."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from db import jobs, outbox_rows
from db.schedule_tables import schedules
from db.tables import sync_jobs
from schemas.domains import DOMAIN_RULES
from schemas.events import SyncRequest
from schemas.schedules import next_fire
from schemas.topics import Topics

# A schedule with its last job's status (the job row is the truth; the schedule points at it).
VIEW = select(*schedules.c, sync_jobs.c.status.label("last_status")).select_from(
    schedules.outerjoin(sync_jobs, sync_jobs.c.id == schedules.c.last_job_id)
)
DUE = text(
    "SELECT * FROM schedules WHERE enabled AND next_run <= now() "
    "ORDER BY next_run FOR UPDATE SKIP LOCKED"
)


@dataclass(frozen=True)
class Fired:
    """What firing did: the job it made, or why it made none."""

    job: RowMapping | None
    created: bool
    skipped: str | None = None
    outbox_id: int | None = None


def upcoming(row: RowMapping | dict[str, Any], now: datetime, anchor: datetime | None) -> datetime:
    return next_fire(
        cron=row["cron"],
        interval_seconds=row["interval_seconds"],
        timezone=row["timezone"],
        after=now,
        anchor=anchor,
    )


async def now(conn: AsyncConnection) -> datetime:
    """The database's clock (every replica and the leader agree on it)."""
    value: datetime = (await conn.execute(select(func.now()))).scalar_one()
    return value


async def create(conn: AsyncConnection, values: dict[str, Any], *, origin: str) -> RowMapping:
    """Insert a schedule; ``values`` hold the ScheduleCreate fields, defaults filled in."""
    row = {**values, "id": uuid.uuid4(), "origin": origin}
    row["next_run"] = upcoming(row, await now(conn), None) if row["enabled"] else None
    stmt = pg_insert(schedules).values(**row).returning(schedules.c.id)
    schedule_id = (await conn.execute(stmt)).scalar_one()
    found = await get(conn, schedule_id)
    assert found is not None
    return found


async def get(conn: AsyncConnection, schedule_id: uuid.UUID) -> RowMapping | None:
    stmt = VIEW.where(schedules.c.id == schedule_id)
    return (await conn.execute(stmt)).mappings().first()


async def list_all(conn: AsyncConnection, domain: str | None = None) -> Sequence[RowMapping]:
    stmt = VIEW.order_by(schedules.c.domain, schedules.c.scope, schedules.c.name)
    if domain:
        stmt = stmt.where(schedules.c.domain == domain)
    return (await conn.execute(stmt)).mappings().all()


async def change(
    conn: AsyncConnection, current: RowMapping, changes: dict[str, Any], *, origin: str
) -> RowMapping:
    """Apply ``changes``; a new timer or enabling recomputes ``next_run`` from now (missed
    windows of a paused schedule are not caught up)."""
    values = {**changes, "origin": origin, "updated_at": func.now()}
    if "cron" in changes and changes["cron"] is not None:
        values["interval_seconds"] = None
    if "interval_seconds" in changes and changes["interval_seconds"] is not None:
        values["cron"] = None
    merged = {**current, **values}
    timer_changed = any(k in changes for k in ("cron", "interval_seconds", "timezone"))
    if not merged["enabled"]:
        values["next_run"] = None
    elif timer_changed or not current["enabled"] or current["next_run"] is None:
        values["next_run"] = upcoming(merged, await now(conn), None)
    stmt = update(schedules).where(schedules.c.id == current["id"]).values(**values)
    await conn.execute(stmt)
    found = await get(conn, current["id"])
    assert found is not None
    return found


async def delete(conn: AsyncConnection, schedule_id: uuid.UUID) -> bool:
    result = await conn.execute(schedules.delete().where(schedules.c.id == schedule_id))
    return bool(result.rowcount)


async def claim_due(conn: AsyncConnection) -> Sequence[RowMapping]:
    """Schedules due now, locked for this transaction (another leader skips them)."""
    return (await conn.execute(DUE)).mappings().all()


def request_id(schedule_id: uuid.UUID, planned: datetime) -> str:
    """One id per schedule and planned fire time: firing twice makes one job."""
    return f"schedule:{schedule_id}:{planned.astimezone(UTC):%Y%m%dT%H%M%SZ}"


async def fire(
    conn: AsyncConnection,
    schedule: RowMapping,
    topics: Topics,
    *,
    request_id: str,
    actor: str | None = None,
) -> Fired:
    """Record the schedule's sync request (job and outbox row, as the api does), unless its
    previous job is still queued or running. Inside the caller's transaction."""
    active = await _previous_still_active(conn, schedule)
    if active is not None:
        return Fired(active, False, f"its previous job {active['id']} is still {active['status']}")
    rules = DOMAIN_RULES[schedule["domain"]]
    request = SyncRequest(
        request_id=request_id,
        domain=schedule["domain"],
        scope=schedule["scope"],
        mode=schedule["mode"],
        trigger="schedule",
        actor=actor,
        params={**schedule["params"], "schedule": schedule["name"]},
    )
    try:
        job, created = await jobs.insert_job(
            conn,
            request,
            job_id=uuid.uuid4(),
            payload_sha256=None,
            body=None,
            exclusive=rules.exclusive,
        )
    except jobs.ActiveJobExists as exc:
        return Fired(None, False, f"a {schedule['domain']} job ({exc.job_id}) is already active")
    outbox_id = await outbox_rows.add_request_outbox(conn, topics, request) if created else None
    await conn.execute(
        update(schedules)
        .where(schedules.c.id == schedule["id"])
        .values(last_run=func.now(), last_job_id=job["id"], updated_at=func.now())
    )
    return Fired(job, created, None, outbox_id)


async def _previous_still_active(conn: AsyncConnection, schedule: RowMapping) -> RowMapping | None:
    if schedule["last_job_id"] is None:
        return None
    stmt = select(sync_jobs.c.id, sync_jobs.c.status).where(
        sync_jobs.c.id == schedule["last_job_id"],
        sync_jobs.c.status.in_(("queued", "running")),
    )
    return (await conn.execute(stmt)).mappings().first()


async def set_next_run(conn: AsyncConnection, schedule_id: uuid.UUID, when: datetime) -> None:
    stmt = update(schedules).where(schedules.c.id == schedule_id).values(next_run=when)
    await conn.execute(stmt)


async def seed(conn: AsyncConnection, values: dict[str, Any]) -> RowMapping | None:
    """A schedule from configuration: created on first start, kept in line with the
    configuration while nobody changed it through the API (then the API's settings win, as
    seed 002 says). ``values`` with ``enabled`` false and no such schedule creates nothing."""
    stmt = (
        select(schedules.c.id, schedules.c.origin)
        .where(
            schedules.c.domain == values["domain"],
            schedules.c.scope == values["scope"],
            schedules.c.name == values["name"],
        )
        .with_for_update()
    )
    existing = (await conn.execute(stmt)).mappings().first()
    if existing is None:
        return await create(conn, values, origin="config") if values["enabled"] else None
    current = await get(conn, existing["id"])
    assert current is not None
    if existing["origin"] != "config":
        return current
    changes = {k: v for k, v in values.items() if current[k] != v}
    return await change(conn, current, changes, origin="config") if changes else current
