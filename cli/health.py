"""``syncbus health --all``: every domain's health, by the rules the leader's alerts use."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from cli.config import database_unreachable, database_url_problem
from db.model_health import EXIT_CODES, HealthConfig, Severity
from schemas.alerts import Condition
from schemas.domains import DOMAIN_RULES
from schemas.settings import Settings
from streams.alerting import MODELS_IN_USE, conditions, models_health, span

# The rules every domain is judged by, then those of pull domains (schedules fire them).
JOB_RULES = ("job_failed", "queued_past_sla", "running_too_long")
PULL_RULES = ("schedule_missed",)
# A domain's own health check, run by the leader as one more rule.
DOMAIN_CHECKS = {"models": "models_health"}
COLOURS = {"ok": "green", "warning": "yellow", "critical": "red"}


@dataclass(frozen=True)
class Row:
    """One line of the report; ``key`` is the alert the leader opens for it (none when ok)."""

    domain: str | None
    check: str
    status: Severity
    detail: str
    key: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    rows: list[Row]
    thresholds: dict[str, Any]

    @property
    def status(self) -> Severity:
        return max((r.status for r in self.rows), key=EXIT_CODES.__getitem__, default="ok")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "thresholds": self.thresholds,
            "checks": [asdict(r) for r in self.rows],
        }


def thresholds(settings: Settings) -> dict[str, Any]:
    return {
        "failed_window_s": settings.alert_failed_window_s,
        "queued_sla_s": settings.alert_queued_sla_s,
        "running_max_s": settings.alert_running_max_s,
        "schedule_grace_s": settings.alert_schedule_grace_s,
        "models": asdict(HealthConfig.from_settings(settings)),
    }


def ok_detail(rule: str, settings: Settings, models_in_use: bool) -> str:
    """What an ok check means, with the threshold it was judged by."""
    details = {
        "job_failed": f"no sync failed in the last {span(settings.alert_failed_window_s)}",
        "queued_past_sla": f"none queued longer than {span(settings.alert_queued_sla_s)}",
        "running_too_long": f"none running longer than {span(settings.alert_running_max_s)}",
        "schedule_missed": f"none late by more than {span(settings.alert_schedule_grace_s)}",
        "models_health": "freshness, volume and failure rate within limits"
        if models_in_use
        else "not checked: the models domain is not in use yet",
    }
    return details[rule]


def check_all(settings: Settings) -> Report:
    """Run every rule against ``DATABASE_URL``; an unreachable database is critical."""
    problem = database_url_problem(settings)
    if problem is not None:
        return Report([Row(None, "database", "critical", problem)], thresholds(settings))
    return Report(asyncio.run(_evaluate(settings)), thresholds(settings))


async def _evaluate(settings: Settings) -> list[Row]:
    engine = create_async_engine(
        settings.sqlalchemy_url, poolclass=NullPool, connect_args={"connect_timeout": 5}
    )
    try:
        try:
            conn = await engine.connect()
        except (SQLAlchemyError, OSError) as exc:
            return [Row(None, "database", "critical", database_unreachable(settings, exc))]
        try:
            found = await conditions(conn, settings)
            found += await models_health(conn, settings)
            in_use = bool((await conn.execute(MODELS_IN_USE)).scalar_one())
            domains = _domains(found)
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            return [
                Row(None, "database", "critical", f"reachable, but the checks failed: {reason}")
            ]
        finally:
            await conn.close()
    finally:
        await engine.dispose()
    return [Row(None, "database", "ok", "reachable"), *_rows(found, domains, settings, in_use)]


def _domains(found: list[Condition]) -> dict[str, str]:
    """Each condition's domain, by its key."""
    by_key = {c.key: str(c.details["domain"]) for c in found if "domain" in c.details}
    by_key.update({c.key: "models" for c in found if c.rule == "models_health"})
    return by_key


def _rows(
    found: list[Condition], domains: dict[str, str], settings: Settings, models_in_use: bool
) -> list[Row]:
    """Per domain, each rule's conditions or an ok line; domains outside the rules last."""
    names = list(DOMAIN_RULES)
    names += sorted({d for d in domains.values() if d not in DOMAIN_RULES})
    rows: list[Row] = []
    for domain in names:
        rules = [*JOB_RULES]
        if domain in DOMAIN_RULES and DOMAIN_RULES[domain].pull:
            rules += PULL_RULES
        if domain in DOMAIN_CHECKS:
            rules.append(DOMAIN_CHECKS[domain])
        mine = [c for c in found if domains.get(c.key) == domain]
        rules += sorted({c.rule for c in mine} - set(rules))
        for rule in rules:
            hits = [c for c in mine if c.rule == rule]
            rows += [Row(domain, rule, c.severity, c.summary, c.key, c.details) for c in hits]
            if not hits:
                rows.append(Row(domain, rule, "ok", ok_detail(rule, settings, models_in_use)))
    unplaced = [c for c in found if c.key not in domains]
    rows += [Row(None, c.rule, c.severity, c.summary, c.key, c.details) for c in unplaced]
    return rows


def print_report(report: Report, as_json: bool, console: Console) -> None:
    if as_json:
        print(json.dumps(report.as_dict(), default=str))
        return
    table = Table(title=f"syncbus health: {report.status}")
    for column in ("domain", "check", "status", "detail"):
        table.add_column(column)
    for row in report.rows:
        colour = COLOURS[row.status]
        status = f"[{colour}]{row.status}[/{colour}]"
        table.add_row(row.domain or "(all)", row.check, status, Text(row.detail))
    console.print(table)
