"""Firing due schedules (the leader's job), and the schedules seeded from configuration."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db import git as git_store
from db import schedules
from db.errors import is_transient
from producers.outbox import OutboxRelay
from schemas.git import SyncConfig
from schemas.schedules import last_fire
from schemas.settings import Settings
from schemas.topics import Topics

log = logging.getLogger(__name__)

RETRY_S = 300  # how soon a schedule that could not fire tries again


def configured_schedules(settings: Settings) -> list[dict[str, Any]]:
    """The schedules the environment asks for (a domain adds its own here)."""
    git_config = SyncConfig(
        enabled=settings.metadata_sync_enabled,
        interval_hours=settings.metadata_sync_interval_hours,
    )
    return [
        # Seed 002: every active release every METADATA_SYNC_INTERVAL_HOURS (configure wins).
        git_store.schedule_values(git_config),
        {
            # Seed 003: the catalogue daily at 02:00 UTC (MODELS_SYNC_CRON).
            "name": "daily-catalogue",
            "domain": "models",
            "scope": "default",
            "mode": "full",
            "params": {},
            "cron": settings.models_sync_cron or "0 2 * * *",
            "interval_seconds": None,
            "timezone": "UTC",
            "enabled": bool(settings.models_sync_cron),
        },
    ]


class Scheduler:
    """Fires what is due: one job per schedule and planned time, whoever fires it."""

    def __init__(
        self, engine: AsyncEngine, relay: OutboxRelay, topics: Topics, settings: Settings
    ) -> None:
        self._engine = engine
        self._relay = relay
        self._topics = topics
        self._settings = settings

    async def seed(self) -> None:
        """Create or update the configured schedules (an operator's changes stay)."""
        async with self._engine.begin() as conn:
            for values in configured_schedules(self._settings):
                row = await schedules.seed(conn, values)
                state = "absent" if row is None else f"{row['origin']}, next {row['next_run']}"
                log.info(
                    "configured schedule %s/%s/%s: %s",
                    values["domain"],
                    values["scope"],
                    values["name"],
                    state,
                )
            if self._settings.metadata_sync_on_startup:
                await self._run_git_sync_now(conn)

    async def _run_git_sync_now(self, conn: AsyncConnection) -> None:
        """METADATA_SYNC_ON_STARTUP: the metadata sync schedule is due when a worker
        starts to lead (its next tick fires it)."""
        schedule = await git_store.the_schedule(conn)
        if schedule is None or not schedule["enabled"]:
            log.info("METADATA_SYNC_ON_STARTUP: the metadata sync schedule is off; nothing to run")
            return
        await schedules.set_next_run(conn, schedule["id"], await schedules.now(conn))
        log.info("METADATA_SYNC_ON_STARTUP: the metadata sync runs now")

    async def tick(self) -> int:
        """Fire every due schedule; returns how many jobs were made. Missed fires (the
        workers were down) collapse into one run at the latest planned time. A schedule
        that cannot fire (a bug, data stored before a rule) is logged and tried again
        later, in a savepoint of its own: it never holds up the others."""
        outbox_ids: list[int] = []
        async with self._engine.begin() as conn:
            now = await schedules.now(conn)
            for schedule in await schedules.claim_due(conn):
                where = f"{schedule['domain']}/{schedule['scope']}/{schedule['name']}"
                try:
                    async with conn.begin_nested():
                        outbox_id = await self._fire(conn, schedule, now, where)
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    log.exception("schedule %s could not fire; next try in %ds", where, RETRY_S)
                    await schedules.set_next_run(
                        conn, schedule["id"], now + timedelta(seconds=RETRY_S)
                    )
                    continue
                if outbox_id is not None:
                    outbox_ids.append(outbox_id)
        if outbox_ids:
            await self._relay.publish_ids(outbox_ids)
        return len(outbox_ids)

    async def _fire(
        self, conn: AsyncConnection, schedule: Any, now: datetime, where: str
    ) -> int | None:
        """Fire one due schedule and plan its next run; the outbox row to publish."""
        planned = last_fire(
            cron=schedule["cron"],
            interval_seconds=schedule["interval_seconds"],
            timezone=schedule["timezone"],
            due=schedule["next_run"],
            now=now,
        )
        fired = await schedules.fire(
            conn,
            schedule,
            self._topics,
            request_id=schedules.request_id(schedule["id"], planned),
        )
        if fired.skipped is not None:
            log.info("schedule %s skipped its %s run: %s", where, planned, fired.skipped)
        elif fired.created and fired.job is not None:
            log.info("schedule %s fired job %s (%s)", where, fired.job["id"], planned)
        upcoming = schedules.upcoming(schedule, now, anchor=planned)
        await schedules.set_next_run(conn, schedule["id"], upcoming)
        return fired.outbox_id
