"""The alert rules: what is wrong now, by domain, from the job store and the models health."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db import alerts
from db.model_health import HealthConfig, check_health
from producers.outbox import OutboxRelay
from schemas.alerts import Condition
from schemas.settings import Settings
from schemas.topics import Topics

log = logging.getLogger(__name__)

FAILED = text(
    """
    SELECT domain, count(*) AS n,
           (array_agg(error_message ORDER BY finished_at DESC))[1] AS latest_error,
           (array_agg(id ORDER BY finished_at DESC))[1] AS latest_job
    FROM sync_jobs
    WHERE status = 'failed' AND finished_at > now() - make_interval(secs => :window)
    GROUP BY domain
    """
)
QUEUED = text(
    """
    SELECT domain, count(*) AS n, extract(epoch FROM now() - min(created_at)) AS oldest
    FROM sync_jobs
    WHERE status = 'queued' AND created_at < now() - make_interval(secs => :limit)
    GROUP BY domain
    """
)
RUNNING = text(
    """
    SELECT domain, count(*) AS n, extract(epoch FROM now() - min(started_at)) AS oldest
    FROM sync_jobs
    WHERE status = 'running' AND started_at < now() - make_interval(secs => :limit)
    GROUP BY domain
    """
)
LATE_SCHEDULES = text(
    """
    SELECT id, domain, scope, name, next_run FROM schedules
    WHERE enabled AND next_run < now() - make_interval(secs => :grace)
    """
)
MODELS_IN_USE = text("SELECT EXISTS (SELECT 1 FROM sync_jobs WHERE domain = 'models')")


async def conditions(conn: AsyncConnection, settings: Settings) -> list[Condition]:
    """Everything the rules find wrong now (the models health check runs separately)."""
    found: list[Condition] = []
    window = settings.alert_failed_window_s
    for row in (await conn.execute(FAILED, {"window": window})).mappings():
        found.append(
            Condition(
                key=f"job_failed:{row['domain']}",
                rule="job_failed",
                severity="critical",
                summary=f"{row['n']} {row['domain']} sync(s) failed in the last "
                f"{span(window)}: {row['latest_error']}",
                details={
                    "domain": row["domain"],
                    "failed": row["n"],
                    "latest_job": str(row["latest_job"]),
                },
            )
        )
    found += await _too_old(conn, QUEUED, "queued_past_sla", "queued", settings.alert_queued_sla_s)
    found += await _too_old(
        conn, RUNNING, "running_too_long", "running", settings.alert_running_max_s
    )
    grace = settings.alert_schedule_grace_s
    for row in (await conn.execute(LATE_SCHEDULES, {"grace": grace})).mappings():
        where = f"{row['domain']}/{row['scope']}/{row['name']}"
        found.append(
            Condition(
                key=f"schedule_missed:{row['id']}",
                rule="schedule_missed",
                severity="warning",
                summary=f"schedule {where} missed its run at {row['next_run']:%Y-%m-%d %H:%M}Z",
                details={
                    "domain": row["domain"],
                    "schedule_id": str(row["id"]),
                    "next_run": row["next_run"].isoformat(),
                },
            )
        )
    return found


async def models_health(conn: AsyncConnection, settings: Settings) -> list[Condition]:
    """Seed 003's health check, once the models domain has run (an installation that never
    syncs models is not unhealthy)."""
    if not (await conn.execute(MODELS_IN_USE)).scalar_one():
        return []
    report = await asyncio.to_thread(
        check_health, settings.libpq_url, HealthConfig.from_settings(settings)
    )
    if report.severity == "ok":
        return []
    failing = [c for c in report.checks if c.severity != "ok"]
    return [
        Condition(
            key="models_health",
            rule="models_health",
            severity=report.severity,
            summary="models sync health is "
            + report.severity
            + ": "
            + "; ".join(f"{c.name} {c.detail}" for c in failing),
            details=report.as_dict(),
        )
    ]


async def _too_old(
    conn: AsyncConnection, query: TextClause, rule: str, state: str, limit_s: float
) -> list[Condition]:
    """Per domain, jobs ``state`` (queued, running) for longer than ``limit_s``."""
    rows = (await conn.execute(query, {"limit": limit_s})).mappings()
    return [
        Condition(
            key=f"{rule}:{row['domain']}",
            rule=rule,
            severity="warning",
            summary=f"{row['n']} {row['domain']} sync(s) {state} longer than {span(limit_s)} "
            f"(oldest {span(float(row['oldest']))})",
            details={"domain": row["domain"], state: row["n"]},
        )
        for row in rows
    ]


def span(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:.3g} s"


class Alerting:
    """The leader's alert pass: evaluate the rules, open and resolve alerts, publish them."""

    def __init__(
        self, engine: AsyncEngine, relay: OutboxRelay, topics: Topics, settings: Settings
    ) -> None:
        self._engine = engine
        self._relay = relay
        self._topics = topics
        self._settings = settings

    async def evaluate(self) -> list[alerts.Changed]:
        async with self._engine.connect() as conn:
            found = await conditions(conn, self._settings)
            found += await models_health(conn, self._settings)
        async with self._engine.begin() as conn:
            changed = await alerts.reconcile(
                conn, found, self._topics, notify=self._settings.alert_webhook_url is not None
            )
        for change in changed:
            log.warning("alert %s: %s", change.event, change.alert.summary)
        if changed:
            await self._relay.publish_ids([c.outbox_id for c in changed])
        return changed
