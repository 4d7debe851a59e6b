"""Seed 003's health check of the models sync: freshness, volume, failure rate, database."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg

from schemas.settings import Settings
from schemas.settings.infrastructure import NOT_A_POSTGRESQL_URL

Severity = Literal["ok", "warning", "critical"]
EXIT_CODES: dict[Severity, int] = {"ok": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class HealthConfig:
    """Seed 003's HEALTH_CONFIG defaults."""

    max_sync_age_hours: float = 25
    min_expected_models: int = 100
    max_failure_rate: float = 20
    recent_syncs_to_check: int = 10

    @classmethod
    def from_settings(cls, settings: Settings) -> HealthConfig:
        """The check as the SYNCBUS_HEALTH_* settings configure it."""
        return cls(
            settings.health_max_sync_age_hours,
            settings.health_min_models,
            settings.health_max_failure_rate,
            settings.health_recent_syncs,
        )


@dataclass(frozen=True)
class Check:
    name: str
    severity: Severity
    detail: str
    value: Any = None


@dataclass(frozen=True)
class HealthReport:
    checks: list[Check]

    @property
    def severity(self) -> Severity:
        worst: Severity = "ok"
        for check in self.checks:
            if EXIT_CODES[check.severity] > EXIT_CODES[worst]:
                worst = check.severity
        return worst

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.severity]

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.severity, "checks": [asdict(c) for c in self.checks]}


LAST_SUCCESS = (
    "SELECT max(finished_at) FROM sync_jobs WHERE domain = 'models' AND status = 'succeeded'"
)
MODEL_COUNT = "SELECT count(*) FROM model_catalog"
RECENT = (
    "SELECT status FROM sync_jobs WHERE domain = 'models' AND status IN ('succeeded', 'failed') "
    "ORDER BY finished_at DESC LIMIT %s"
)


def freshness(last_success: datetime | None, now: datetime, config: HealthConfig) -> Check:
    if last_success is None:
        return Check("sync freshness", "critical", "no successful models sync yet")
    hours = (now - last_success).total_seconds() / 3600
    detail = f"last successful sync {hours:.1f} h ago (max {config.max_sync_age_hours:g} h)"
    if hours <= config.max_sync_age_hours:
        return Check("sync freshness", "ok", detail, round(hours, 2))
    severity: Severity = "warning" if hours <= 2 * config.max_sync_age_hours else "critical"
    return Check("sync freshness", severity, detail, round(hours, 2))


def volume(count: int, config: HealthConfig) -> Check:
    detail = f"{count} models stored (min {config.min_expected_models})"
    if count >= config.min_expected_models:
        return Check("data volume", "ok", detail, count)
    return Check("data volume", "critical" if count == 0 else "warning", detail, count)


def failure_rate(statuses: list[str], config: HealthConfig) -> Check:
    if not statuses:
        return Check("failure rate", "warning", "no finished syncs to judge", None)
    failed = sum(1 for s in statuses if s == "failed")
    rate = 100 * failed / len(statuses)
    detail = (
        f"{failed} of the last {len(statuses)} syncs failed ({rate:.0f}%, "
        f"max {config.max_failure_rate:g}%)"
    )
    if rate <= config.max_failure_rate:
        return Check("failure rate", "ok", detail, rate)
    return Check("failure rate", "critical" if failed == len(statuses) else "warning", detail, rate)


def check_health(
    database_url: str, config: HealthConfig, now: datetime | None = None
) -> HealthReport:
    """Run every check; an unreachable database is critical and ends the report."""
    now = now or datetime.now(UTC)
    try:
        conn = psycopg.connect(database_url, connect_timeout=5)
    except psycopg.ProgrammingError:
        return HealthReport([Check("database", "critical", NOT_A_POSTGRESQL_URL)])
    except psycopg.Error as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return HealthReport([Check("database", "critical", f"unreachable: {reason}")])
    with conn:
        last = conn.execute(LAST_SUCCESS).fetchone()
        count = conn.execute(MODEL_COUNT).fetchone()
        recent = conn.execute(RECENT, (config.recent_syncs_to_check,)).fetchall()
    return HealthReport(
        [
            Check("database", "ok", "reachable"),
            freshness(last[0] if last else None, now, config),
            volume(int(count[0]) if count else 0, config),
            failure_rate([r[0] for r in recent], config),
        ]
    )
