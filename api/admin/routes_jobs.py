"""The jobs list (filtered, refreshed live) and one job's page (its log streams over SSE)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from api.admin.pages import SignedIn, State, render
from db import jobs
from db.dictionary_tables import dictionary_audit_log
from db.engine import autocommit
from db.tables import audit_log
from schemas.domains import DOMAIN_RULES
from schemas.jobs import JobCounts

router = APIRouter(prefix="/admin", include_in_schema=False)

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
DOMAIN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
LIMIT = 100
AUDIT_LIMIT = 200


@dataclass(frozen=True)
class Filters:
    """The jobs list's filters, checked (each one blank when not given)."""

    domain: str = ""
    status: str = ""
    since: str = ""  # an <input type=datetime-local> value, read as UTC
    error: str = ""

    @property
    def since_time(self) -> datetime | None:
        return _utc(self.since) if self.since else None

    def query(self) -> dict[str, str]:
        return {k: v for k, v in (("domain", self.domain), ("status", self.status),
                                  ("since", self.since)) if v}  # fmt: skip


def _utc(value: str) -> datetime:
    """An ISO 8601 time, read as UTC when it has no offset; ValueError when it is none."""
    when = datetime.fromisoformat(value)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _filters(request: Request) -> Filters:
    params = request.query_params
    domain, status, since = (params.get(k, "").strip() for k in ("domain", "status", "since"))
    problems = []
    if domain and not DOMAIN.fullmatch(domain):
        problems.append("domain: letters, digits and _.:- only")
        domain = ""
    if status and status not in STATUSES:
        problems.append(f"status: one of {', '.join(STATUSES)}")
        status = ""
    if since:
        try:
            _utc(since)
        except (ValueError, OverflowError):
            problems.append("since: a date and time such as 2026-01-31T09:30")
            since = ""
    return Filters(domain, status, since, "; ".join(problems))


async def _rows(state: State, filters: Filters) -> list[RowMapping]:
    async with autocommit(state.engine) as conn:
        rows = await jobs.list_jobs(
            conn, domain=filters.domain or None, status=filters.status or None, before=None,
            limit=LIMIT,
        )  # fmt: skip
    since = filters.since_time
    # Newest first: the newest LIMIT jobs since then are exactly these.
    return [r for r in rows if since is None or r["created_at"] >= since]


@router.get("/jobs", response_class=HTMLResponse)
async def jobs_page(request: Request, state: State, session: SignedIn) -> Response:
    filters = _filters(request)
    context = {
        "title": "Jobs",
        "filters": filters,
        "rows": await _rows(state, filters),
        "domains": sorted(DOMAIN_RULES),
        "statuses": STATUSES,
    }
    return render(request, "jobs.html", session, context, status_code=400 if filters.error else 200)


@router.get("/jobs/rows", response_class=HTMLResponse)
async def job_rows(request: Request, state: State, session: SignedIn) -> Response:
    """The table's rows alone, which the page fetches again every few seconds."""
    filters = _filters(request)
    context = {"rows": await _rows(state, filters)}
    return render(
        request, "_job_rows.html", session, context, status_code=400 if filters.error else 200
    )


async def _audit(state: State, job_id: uuid.UUID) -> tuple[list[RowMapping], list[RowMapping]]:
    async with autocommit(state.engine) as conn:
        general = (
            await conn.execute(
                select(audit_log).where(audit_log.c.job_id == job_id)
                .order_by(audit_log.c.id).limit(AUDIT_LIMIT)
            )
        ).mappings().all()  # fmt: skip
        words = (
            await conn.execute(
                select(dictionary_audit_log).where(dictionary_audit_log.c.job_id == job_id)
                .order_by(dictionary_audit_log.c.id).limit(AUDIT_LIMIT)
            )
        ).mappings().all()  # fmt: skip
    return list(general), list(words)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(job_id: str, request: Request, state: State, session: SignedIn) -> Response:
    try:
        parsed = uuid.UUID(job_id)
    except ValueError:
        parsed = None
    job = None
    if parsed is not None:
        async with autocommit(state.engine) as conn:
            job = await jobs.get_job(conn, parsed)
    if parsed is None or job is None:
        context: dict[str, Any] = {"title": "No such job", "message": f"No job {job_id!r}."}
        return render(request, "error.html", session, context, status_code=404)
    general, words = await _audit(state, parsed)
    context = {
        "title": f"Job {job['id']}",
        "job": job,
        "counts": {k: job[k] for k in JobCounts.model_fields},
        "audit": general,
        "word_audit": words,
        "audit_limit": AUDIT_LIMIT,
        "events_url": f"/v1/syncs/{job['id']}/events",
    }
    return render(request, "job.html", session, context)
