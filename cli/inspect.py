"""``syncbus inspect JOB``: a job's row, its events and its audit rows from PostgreSQL."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from cli.database import run_in_transaction
from db import job_view
from schemas.settings import Settings

JOB_FIELDS = (
    "id", "number", "request_id", "domain", "scope", "mode", "status", "trigger", "actor",
    "params", "attempt", "discovered", "created", "updated", "deleted", "unchanged", "errors",
    "error_message", "error_details", "result", "payload_sha256", "created_at", "started_at",
    "finished_at",
)  # fmt: skip


class UnknownJob(Exception):
    """No job has that id or number."""


@dataclass(frozen=True)
class JobView:
    job: dict[str, Any]
    events: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    reruns: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        view = {"job": self.job, "events": self.events, "audit": self.audit}
        plain: dict[str, Any] = _plain({**view, "reruns": self.reruns})
        return plain


def parse_job_ref(text: str) -> uuid.UUID | int:
    """A job id (UUID) or a job number; ValueError saying what it should be."""
    value = text.strip()
    if value.isdigit() and 0 < len(value) <= 18:
        return int(value)
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValueError(f"not a job id: {text!r} (a job's UUID or its number)") from None


def load(settings: Settings, ref: uuid.UUID | int) -> JobView:
    async def work(conn: AsyncConnection) -> JobView:
        job = await job_view.find_job(conn, ref)
        if job is None:
            raise UnknownJob(f"no job {ref}")
        events = await job_view.job_events(conn, job["id"])
        audit = await job_view.job_audit(conn, job["id"])
        reruns = await job_view.reruns_of(conn, job["request_id"])
        return JobView(
            {name: job[name] for name in JOB_FIELDS},
            [dict(e) for e in events],
            [dict(a) for a in audit],
            [dict(r) for r in reruns],
        )

    return run_in_transaction(settings, work)


def render(view: JobView, as_json: bool, out: Console) -> None:
    if as_json:
        print(json.dumps(view.as_dict()))
        return
    plain = view.as_dict()
    job = Table(title=f"job {plain['job']['id']}", show_header=False)
    job.add_column("field", style="bold")
    job.add_column("value", overflow="fold")
    for name, value in plain["job"].items():
        if value not in (None, {}, ""):
            job.add_row(name, value if isinstance(value, str) else json.dumps(value))
    out.print(job)
    events = Table(title=f"events ({len(view.events)})")
    for column in ("seq", "at", "type", "data"):
        events.add_column(column, overflow="fold", no_wrap=column != "data")
    for event in plain["events"]:
        data = event["data"]
        text = data.get("message") if isinstance(data, dict) and "message" in data else None
        events.add_row(
            str(event["seq"]), _short(event["created_at"]), event["type"], text or json.dumps(data)
        )
    out.print(events)
    audit = Table(title=f"audit rows ({len(view.audit)})")
    for column in ("at", "action", "actor", "data"):
        audit.add_column(column, overflow="fold", no_wrap=column != "data")
    for row in plain["audit"]:
        audit.add_row(
            _short(row["occurred_at"]), row["action"], row["actor"] or "-", json.dumps(row["data"])
        )
    out.print(audit)
    rerun_of = (view.job.get("params") or {}).get("rerun_of")
    if rerun_of:
        out.print(f"a rerun of request {rerun_of}", markup=False, highlight=False)
    for rerun in plain["reruns"]:
        line = f"rerun: job {rerun['id']} ({rerun['request_id']}) {rerun['status']}"
        out.print(line, markup=False, highlight=False)


def _short(iso: str) -> str:
    """``2026-11-30T08:41:40.048112+00:00`` as ``2026-11-30 08:41:40.048`` (UTC) for tables."""
    moment = datetime.fromisoformat(iso).astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _plain(value: Any) -> Any:
    """JSON-ready: datetimes as ISO 8601, UUIDs as text."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value
