"""The generic API for new clients: create, list and read syncs, follow one over SSE."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Query, Response
from sqlalchemy.engine import RowMapping
from sse_starlette import EventSourceResponse

from api.auth import AdminOnly
from api.domains import EXCLUSIVE_DOMAINS, mode_for, scope_for
from api.problems import Problem
from api.sse import job_events, parse_last_event_id
from api.state import ApiState, get_state
from api.submit import submit
from db import jobs
from db.engine import autocommit
from db.jobs import ActiveJobExists
from db.tables import TERMINAL_STATUSES
from schemas.events import SyncRequest
from schemas.jobs import JobCounts, JobList, JobView, SyncCreate
from schemas.json_value import Identifier
from schemas.signing import canonical_sha256

router = APIRouter(prefix="/v1", tags=["syncs"], dependencies=[AdminOnly])
State = Annotated[ApiState, Depends(get_state)]


def job_view(row: RowMapping) -> JobView:
    return JobView(
        id=row["id"],
        request_id=row["request_id"],
        domain=row["domain"],
        scope=row["scope"],
        mode=row["mode"],
        status=row["status"],
        trigger=row["trigger"],
        actor=row["actor"],
        params=row["params"],
        counts=JobCounts(**{k: row[k] for k in JobCounts.model_fields}),
        result=row["result"],
        error_message=row["error_message"],
        attempt=row["attempt"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        events_url=f"/v1/syncs/{row['id']}/events",
    )


@router.post("/syncs", status_code=202, response_model=JobView)
async def create_sync(body: SyncCreate, state: State, response: Response) -> JobView:
    scope = scope_for(body)
    request = SyncRequest(
        request_id=body.request_id or str(uuid.uuid4()),
        domain=body.domain,
        scope=scope,
        mode=mode_for(body.domain, body.mode),
        trigger="http",
        actor="admin",
        params=body.params,
    )
    payload_body = orjson.dumps(body.payload).decode() if body.payload is not None else None
    fingerprint = canonical_sha256(body.payload) if body.payload is not None else None
    try:
        job, created = await submit(
            state,
            request,
            body=payload_body,
            fingerprint=fingerprint,
            exclusive=body.domain in EXCLUSIVE_DOMAINS,
        )
    except ActiveJobExists as exc:
        raise Problem(
            409, f"a {body.domain} sync is already running", job_id=str(exc.job_id)
        ) from None
    if not created:
        if job["payload_sha256"] != fingerprint or job["domain"] != body.domain:
            raise Problem(409, f"request_id '{request.request_id}' was used for another request")
        response.status_code = 200
    response.headers["Location"] = f"/v1/syncs/{job['id']}"
    return job_view(job)


@router.get("/syncs", response_model=JobList)
async def list_syncs(
    state: State,
    domain: Annotated[Identifier | None, Query(max_length=64)] = None,
    status: Annotated[
        str | None, Query(pattern="^(queued|running|succeeded|failed|cancelled)$")
    ] = None,
    before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JobList:
    async with autocommit(state.engine) as conn:
        rows = await jobs.list_jobs(conn, domain=domain, status=status, before=before, limit=limit)
    items = [job_view(r) for r in rows]
    next_before = items[-1].created_at if len(items) >= limit else None
    return JobList(items=items, next_before=next_before)


async def _job(state: ApiState, job_id: uuid.UUID) -> RowMapping:
    async with autocommit(state.engine) as conn:
        row = await jobs.get_job(conn, job_id)
    if row is None:
        raise Problem(404, f"sync {job_id} not found")
    return row


@router.get("/syncs/{job_id}", response_model=JobView)
async def get_sync(job_id: uuid.UUID, state: State) -> JobView:
    return job_view(await _job(state, job_id))


@router.get("/syncs/{job_id}/events", response_class=EventSourceResponse)
async def sync_events(
    job_id: uuid.UUID,
    state: State,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    job = await _job(state, job_id)
    return sse_response(state, job, last_event_id)


def sse_response(
    state: ApiState, job: RowMapping, last_event_id: str | None
) -> EventSourceResponse:
    """The SSE response for one job (shared with the seed routes that stream progress)."""
    after = parse_last_event_id(last_event_id)
    if after is None:
        raise Problem(400, "Last-Event-ID must be an event id this stream sent (ASCII digits)")
    stream = job_events(
        state.engine,
        state.hub,
        job["id"],
        after=after,
        finished=job["status"] in TERMINAL_STATUSES,
        inactivity_timeout_s=state.settings.sse_inactivity_timeout_s,
    )
    # A client that stops reading (without closing) is dropped after 30 s, not left to
    # fill its queue until TCP gives up.
    return EventSourceResponse(stream, ping=15, send_timeout=30)
