"""The saas domain's store: app instances (with their schedules) and each collection's state."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from db import schedules
from db.saas_tables import saas_apps
from db.schedule_tables import schedules as schedule_table
from db.tables import sync_state
from schemas.saas import DOMAIN

APP_SCHEDULE = "app-sync"  # the name of each app's schedule (domain saas, scope app_key)


async def get_app(conn: AsyncConnection, app_key: str) -> RowMapping | None:
    stmt = select(saas_apps).where(saas_apps.c.app_key == app_key)
    return (await conn.execute(stmt)).mappings().first()


async def list_apps(conn: AsyncConnection) -> Sequence[RowMapping]:
    return (await conn.execute(select(saas_apps).order_by(saas_apps.c.app_key))).mappings().all()


async def put_app(conn: AsyncConnection, values: dict[str, Any], *, origin: str) -> RowMapping:
    """Create or replace an app (``values``: AppConfig.resolved()) and its schedule."""
    insert = pg_insert(saas_apps).values(**values, origin=origin)
    upsert = insert.on_conflict_do_update(
        index_elements=[saas_apps.c.app_key],
        set_={
            **{k: insert.excluded[k] for k in values if k != "app_key"},
            "origin": origin,
            "updated_at": func.now(),
        },
    ).returning(*saas_apps.c)
    row = (await conn.execute(upsert)).mappings().one()
    await _follow_schedule(conn, row)
    return row


async def create_app(
    conn: AsyncConnection, values: dict[str, Any], *, origin: str
) -> RowMapping | None:
    """Create an app (``values``: AppConfig.resolved()) and its schedule; None when its
    ``app_key`` exists already (then nothing changes)."""
    insert = (
        pg_insert(saas_apps)
        .values(**values, origin=origin)
        .on_conflict_do_nothing(index_elements=[saas_apps.c.app_key])
        .returning(*saas_apps.c)
    )
    row = (await conn.execute(insert)).mappings().first()
    if row is not None:
        await _follow_schedule(conn, row)
    return row


async def seed_app(conn: AsyncConnection, values: dict[str, Any]) -> RowMapping:
    """An app from ``SYNCBUS_APPS_FILE``: created, or kept in line with the file while
    nobody changed it through ``/v1/apps`` (then the API's settings win)."""
    current = await get_app(conn, values["app_key"])
    if current is not None and current["origin"] != "config":
        return current
    return await put_app(conn, values, origin="config")


async def delete_app(conn: AsyncConnection, app_key: str) -> bool:
    """Forget an app and its schedule (its synced entities stay until deleted by hand)."""
    await conn.execute(
        schedule_table.delete().where(
            schedule_table.c.domain == DOMAIN,
            schedule_table.c.scope == app_key,
            schedule_table.c.name == APP_SCHEDULE,
        )
    )
    result = await conn.execute(saas_apps.delete().where(saas_apps.c.app_key == app_key))
    return bool(result.rowcount)


async def _follow_schedule(conn: AsyncConnection, app: RowMapping) -> None:
    """Each app's cron becomes a schedule (incremental unless the app says otherwise)."""
    values = {
        "name": APP_SCHEDULE,
        "domain": DOMAIN,
        "scope": app["app_key"],
        "mode": app["mode"],
        "params": {},
        "cron": app["schedule"] or "0 * * * *",
        "interval_seconds": None,
        "timezone": "UTC",
        "enabled": app["schedule"] is not None,
    }
    existing = (
        await conn.execute(
            select(schedule_table.c.id).where(
                schedule_table.c.domain == DOMAIN,
                schedule_table.c.scope == app["app_key"],
                schedule_table.c.name == APP_SCHEDULE,
            )
        )
    ).first()
    if existing is None:
        if values["enabled"]:
            await schedules.create(conn, values, origin=app["origin"])
        return
    current = await schedules.get(conn, existing[0])
    assert current is not None
    changes = {k: v for k, v in values.items() if current[k] != v}
    if changes:
        await schedules.change(conn, current, changes, origin=app["origin"])


async def collection_state(
    conn: AsyncConnection, app_key: str, collection_key: str
) -> RowMapping | None:
    """The collection's cursor and ``last_synced_at``, None before its first success."""
    stmt = select(sync_state).where(
        sync_state.c.domain == DOMAIN,
        sync_state.c.scope == app_key,
        sync_state.c.collection == collection_key,
    )
    return (await conn.execute(stmt)).mappings().first()


async def advance_state(
    conn: AsyncConnection, app_key: str, collection_key: str, synced_at: datetime, cursor: str
) -> None:
    """A collection synced: the next incremental run starts from ``cursor`` (the time the
    successful sync started, so changes made during it are seen next time)."""
    stmt = pg_insert(sync_state).values(
        domain=DOMAIN,
        scope=app_key,
        collection=collection_key,
        cursor=cursor,
        last_synced_at=synced_at,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[sync_state.c.domain, sync_state.c.scope, sync_state.c.collection],
        set_={"cursor": cursor, "last_synced_at": synced_at, "updated_at": func.now()},
    )
    await conn.execute(stmt)
