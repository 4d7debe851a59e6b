"""The git domain's store: releases, the sync configuration and its schedule, each release's
synced commit, and the seed's history (parsed modules: db.git_modules)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import psycopg
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from db import schedules
from db.git_tables import releases, test_metadata
from db.schedule_tables import schedules as schedule_table
from db.tables import app_settings, sync_state
from schemas.git import (
    ALL_RELEASES,
    DOMAIN,
    ENABLED_KEY,
    INTERVAL_KEY,
    SCHEDULE_NAME,
    SyncConfig,
    interval_seconds,
)
from schemas.settings import Settings

TESTS_COLLECTION = "tests"  # sync_state.collection of a release (scope release:<id>)


class ReleaseNameTaken(Exception):
    """Another release already has this name."""


def release_scope(release_id: int) -> str:
    return f"release:{release_id}"


async def get_release(conn: AsyncConnection, release_id: int) -> RowMapping | None:
    stmt = select(releases).where(releases.c.id == release_id)
    return (await conn.execute(stmt)).mappings().first()


async def list_releases(conn: AsyncConnection) -> Sequence[RowMapping]:
    return (await conn.execute(select(releases).order_by(releases.c.id))).mappings().all()


async def syncable_releases(conn: AsyncConnection) -> Sequence[RowMapping]:
    """Every active release that has a branch (seed 002's "all active releases")."""
    stmt = (
        select(releases)
        .where(releases.c.active, releases.c.git_branch.is_not(None))
        .order_by(releases.c.id)
    )
    return (await conn.execute(stmt)).mappings().all()


async def create_release(
    conn: AsyncConnection, values: dict[str, Any], *, origin: str = "api"
) -> RowMapping:
    stmt = (
        pg_insert(releases)
        .values(**values, origin=origin)
        .on_conflict_do_nothing(index_elements=[releases.c.name])
        .returning(*releases.c)
    )
    row = (await conn.execute(stmt)).mappings().first()
    if row is None:
        raise ReleaseNameTaken(values["name"])
    return row


async def change_release(
    conn: AsyncConnection, release_id: int, changes: dict[str, Any], *, origin: str = "api"
) -> RowMapping | None:
    if "name" in changes:
        taken = await conn.execute(
            select(releases.c.id).where(
                releases.c.name == changes["name"], releases.c.id != release_id
            )
        )
        if taken.first() is not None:
            raise ReleaseNameTaken(changes["name"])
    stmt = (
        update(releases)
        .where(releases.c.id == release_id)
        .values(**changes, origin=origin, updated_at=func.now())
        .returning(*releases.c)
    )
    try:
        return (await conn.execute(stmt)).mappings().first()
    except IntegrityError:  # another transaction took the name since the look above
        raise ReleaseNameTaken(changes["name"]) from None


async def seed_release(conn: AsyncConnection, values: dict[str, Any]) -> RowMapping:
    """A release from ``SYNCBUS_RELEASES_FILE``: created, or kept in line with the file while
    nobody changed it through the API (then the API's values win)."""
    found = await conn.execute(select(releases).where(releases.c.name == values["name"]))
    current = found.mappings().first()
    if current is None:
        return await create_release(conn, values, origin="config")
    if current["origin"] != "config":
        return current
    changed = await change_release(conn, current["id"], values, origin="config")
    assert changed is not None
    return changed


async def list_tests(
    conn: AsyncConnection, release_id: int, *, file: str | None, limit: int, offset: int
) -> Sequence[RowMapping]:
    stmt = select(test_metadata).where(test_metadata.c.release_id == release_id)
    if file is not None:
        stmt = stmt.where(test_metadata.c.file == file)
    stmt = stmt.order_by(test_metadata.c.nodeid).limit(limit).offset(offset)
    return (await conn.execute(stmt)).mappings().all()


async def count_tests(
    conn: AsyncConnection, release_id: int, *, except_files: Iterable[str] = ()
) -> int:
    stmt = select(func.count()).where(test_metadata.c.release_id == release_id)
    files = list(except_files)
    if files:
        stmt = stmt.where(test_metadata.c.file.not_in(files))
    return int((await conn.execute(stmt)).scalar_one())


# The sync configuration: app_settings wins over the environment (seed 002).


async def sync_config(conn: AsyncConnection, settings: Settings) -> SyncConfig:
    stmt = select(app_settings.c.key, app_settings.c.value).where(
        app_settings.c.key.in_((ENABLED_KEY, INTERVAL_KEY))
    )
    stored = {row.key: row.value for row in await conn.execute(stmt)}
    return SyncConfig(
        enabled=bool(stored.get(ENABLED_KEY, settings.metadata_sync_enabled)),
        interval_hours=float(stored.get(INTERVAL_KEY, settings.metadata_sync_interval_hours)),
    )


async def configure(
    conn: AsyncConnection, settings: Settings, enabled: bool | None, hours: float | None
) -> tuple[SyncConfig, RowMapping | None]:
    """Store what was given, and make the schedule follow at once; (config, schedule)."""
    for key, value in ((ENABLED_KEY, enabled), (INTERVAL_KEY, hours)):
        if value is None:
            continue
        insert = pg_insert(app_settings).values(key=key, value=value)
        await conn.execute(
            insert.on_conflict_do_update(
                index_elements=[app_settings.c.key],
                set_={"value": insert.excluded.value, "updated_at": func.now()},
            )
        )
    config = await sync_config(conn, settings)
    return config, await follow_config(conn, config, origin="api")


def schedule_values(config: SyncConfig) -> dict[str, Any]:
    """The git domain's one schedule: every active release, incremental."""
    return {
        "name": SCHEDULE_NAME,
        "domain": DOMAIN,
        "scope": ALL_RELEASES,
        "mode": "incremental",
        "params": {},
        "cron": None,
        "interval_seconds": interval_seconds(config.interval_hours),
        "timezone": "UTC",
        "enabled": config.enabled,
    }


async def follow_config(
    conn: AsyncConnection, config: SyncConfig, *, origin: str
) -> RowMapping | None:
    values = schedule_values(config)
    current = await the_schedule(conn)
    if current is None:
        return await schedules.create(conn, values, origin=origin) if config.enabled else None
    changes = {k: v for k, v in values.items() if current[k] != v}
    return await schedules.change(conn, current, changes, origin=origin) if changes else current


async def the_schedule(conn: AsyncConnection) -> RowMapping | None:
    found = await conn.execute(
        select(schedule_table.c.id).where(
            schedule_table.c.domain == DOMAIN,
            schedule_table.c.scope == ALL_RELEASES,
            schedule_table.c.name == SCHEDULE_NAME,
        )
    )
    row = found.first()
    return await schedules.get(conn, row[0]) if row is not None else None


# Synced commits (the worker's side).


async def synced_commit(conn: AsyncConnection, release_id: int) -> dict[str, Any] | None:
    """What the release's last successful sync recorded: commit and discovery fingerprint."""
    stmt = select(sync_state.c.cursor).where(
        sync_state.c.domain == DOMAIN,
        sync_state.c.scope == release_scope(release_id),
        sync_state.c.collection == TESTS_COLLECTION,
    )
    cursor = (await conn.execute(stmt)).scalar_one_or_none()
    return orjson.loads(cursor) if cursor else None


EARLIER_SYNC_RUNNING = text("""
    SELECT EXISTS (
        SELECT 1 FROM sync_jobs j JOIN sync_jobs me ON me.id = :job_id
        WHERE j.domain = me.domain AND j.scope = me.scope AND j.status = 'running'
          AND j.id <> me.id
          AND j.created_at < me.created_at
          AND (NOT j.params ? 'release_ids' OR NOT me.params ? 'release_ids'
               OR EXISTS (SELECT 1 FROM jsonb_array_elements(j.params -> 'release_ids') a
                          JOIN jsonb_array_elements(me.params -> 'release_ids') b ON a = b))
    )
""")


async def earlier_sync_running(conn: AsyncConnection, job_id: uuid.UUID) -> bool:
    """Whether a git job of the same scope (a branch, or all releases) created before
    ``job_id`` runs now, on this worker (the claim waits for one elsewhere), and syncs one
    of its releases: its apply changes what this one starts from."""
    return bool((await conn.execute(EARLIER_SYNC_RUNNING, {"job_id": job_id})).scalar_one())


# In the job's transaction (psycopg): the release's state as the last successful sync left it.
SYNCED_STATE = (
    "SELECT cursor FROM sync_state WHERE domain = 'git' AND scope = %(scope)s "
    "AND collection = 'tests'"
)
RECORD_SYNCED = """
    INSERT INTO sync_state (domain, scope, collection, cursor, last_synced_at)
    VALUES (%(domain)s, %(scope)s, %(collection)s, %(cursor)s, now())
    ON CONFLICT (domain, scope, collection)
    DO UPDATE SET cursor = excluded.cursor, last_synced_at = now(), updated_at = now()
"""


async def record_synced(
    conn: psycopg.AsyncConnection[Any], release_id: int, state: dict[str, Any]
) -> None:
    """In the job's transaction (the handler's psycopg connection): the release is synced."""
    await conn.execute(
        RECORD_SYNCED,
        {
            "domain": DOMAIN,
            "scope": release_scope(release_id),
            "collection": TESTS_COLLECTION,
            "cursor": orjson.dumps(state).decode(),
        },
    )


HISTORY = text("SELECT * FROM metadata_sync_logs ORDER BY id DESC LIMIT :limit")


async def history(conn: AsyncConnection, limit: int) -> Sequence[RowMapping]:
    return (await conn.execute(HISTORY, {"limit": limit})).mappings().all()
