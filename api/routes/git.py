"""Seed 002's metadata-sync API, unchanged: trigger, progress (SSE), status, history, configure."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from sqlalchemy.engine import RowMapping
from sse_starlette import EventSourceResponse

from api.auth import PinOnly
from api.problems import Problem
from api.routes.releases import find_release
from api.routes.v1 import sse_response
from api.state import ApiState, get_state
from api.submit import publish_row_soon, record
from db import git, jobs
from db.engine import autocommit
from schemas.events import SyncRequest
from schemas.git import ALL_RELEASES, DOMAIN, ConfigureBody, seed_time

MAX_HISTORY = 1000

router = APIRouter(
    prefix="/api/v1/admin/metadata-sync", tags=["git (seed 002)"], dependencies=[PinOnly]
)
State = Annotated[ApiState, Depends(get_state)]


async def _start(state: ApiState, scope: str, params: dict[str, Any]) -> RowMapping:
    """Queue a sync behind the one running on its branch (seed 002's syncs wait for the
    branch's Git lock); a trigger while the same sync waits joins it."""
    request = SyncRequest(
        request_id=f"git-{uuid.uuid4()}",
        domain=DOMAIN,
        scope=scope,
        mode="incremental",
        trigger="http",
        actor="admin",
        params=params,
    )
    async with state.engine.begin() as conn:
        waiting = await jobs.queued_twin(conn, DOMAIN, scope, params)
        if waiting is not None:
            return waiting
        job, outbox_row = await record(
            conn, state, request, job_id=uuid.uuid4(), body=None, fingerprint=None, stored=False
        )
    if outbox_row is not None:
        publish_row_soon(state, outbox_row)
    return job


@router.post("/trigger/{release_id}")
async def trigger_release(release_id: int, state: State) -> dict[str, str]:
    """Sync one release from its Git branch."""
    release = await find_release(state, release_id)
    if release is None:
        raise Problem(404, f"Release {release_id} not found")
    branch = release["git_branch"]
    if not branch:
        raise Problem(400, f"Release {release['name']} has no git_branch configured")
    job = await _start(state, branch, {"release_ids": [release_id]})
    return {
        "job_id": str(job["id"]),
        "status": "started",
        "message": f"Metadata sync started for release: {release['name']}",
    }


@router.post("/trigger")
async def trigger_all(state: State) -> dict[str, str]:
    """Sync every active release that has a Git branch, one after the other."""
    async with autocommit(state.engine) as conn:
        syncable = await git.syncable_releases(conn)
    if not syncable:
        raise Problem(400, "No active release has a git_branch configured")
    job = await _start(state, ALL_RELEASES, {})
    return {
        "job_id": str(job["id"]),
        "status": "started",
        "message": "Metadata sync started for all active releases",
    }


@router.get("/progress/{job_id}", response_class=EventSourceResponse)
async def progress(
    job_id: uuid.UUID,
    state: State,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """The job's events as SSE: what it missed first, then live, until it ends."""
    async with autocommit(state.engine) as conn:
        job = await jobs.get_job(conn, job_id)
    if job is None or job["domain"] != DOMAIN:
        raise Problem(404, f"Job {job_id} not found")
    return sse_response(state, job, last_event_id)


def log_view(row: RowMapping) -> dict[str, Any]:
    """One history entry, with the seed's names and types (``id`` an integer)."""
    return {
        "id": int(row["id"]),
        "status": row["status"],
        "sync_type": row["sync_type"],
        "git_commit_hash": row["git_commit_hash"],
        "tests_discovered": row["tests_discovered"],
        "tests_added": row["tests_added"],
        "tests_updated": row["tests_updated"],
        "tests_removed": row["tests_removed"],
        "started_at": seed_time(row["started_at"]),
        "completed_at": seed_time(row["completed_at"]),
        "error_message": row["error_message"],
        "job_id": str(row["job_id"]),
        "releases": row["releases"] or [],
    }


@router.get("/status")
async def status(state: State) -> dict[str, Any]:
    """Whether the schedule is on, its interval and next run, and the last sync."""
    async with autocommit(state.engine) as conn:
        config = await git.sync_config(conn, state.settings)
        schedule = await git.the_schedule(conn)
        last = await git.history(conn, 1)
    next_run = schedule["next_run"] if schedule is not None and schedule["enabled"] else None
    return {
        "enabled": config.enabled,
        "interval_hours": config.interval_hours,
        "next_run": seed_time(next_run),
        "last_sync": log_view(last[0]) if last else None,
    }


@router.get("/history")
async def history(
    state: State, limit: Annotated[int, Query(ge=1, le=2**31 - 1)] = 50
) -> list[dict[str, Any]]:
    """The latest syncs, newest first."""
    async with autocommit(state.engine) as conn:
        rows = await git.history(conn, min(limit, MAX_HISTORY))  # the seed sets no maximum
    return [log_view(r) for r in rows]


@router.post("/configure")
async def configure(body: ConfigureBody, state: State) -> dict[str, str]:
    """Turn the schedule on or off and set its interval; it follows at once."""
    if body.enabled is None and body.interval_hours is None:
        raise Problem(422, "give enabled, interval_hours or both")
    async with state.engine.begin() as conn:
        await git.configure(conn, state.settings, body.enabled, body.interval_hours)
    return {"message": "Configuration updated successfully"}
