"""Seed 001's sync endpoint as supasaasy's clients call it, and its job status."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import RowMapping

from api.auth import authenticated
from api.problems import Problem
from api.state import ApiState, get_state
from api.submit import submit, wait_until_done
from api.supasaasy import (
    SupasaasyError,
    app_or_404,
    bearer_key,
    closing_unless_read,
    limit,
    preflight,
    read_body,
)
from db import event_log, jobs, saas
from db.engine import autocommit
from db.errors import is_transient
from db.jobs import ActiveJobExists
from schemas.events import SyncMode, SyncRequest
from schemas.saas import APP_KEY, CONNECTORS, DOMAIN, task_key_of

log = logging.getLogger(__name__)

router = APIRouter(tags=["saas (seed 001, supasaasy)"])
State = Annotated[ApiState, Depends(get_state)]

SYNC_PATHS = ("/sync", "/functions/v1/sync")
UNAUTHORIZED = "Unauthorized: invalid or missing API key"
OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE", "HEAD"]
SEED_STATUS = {
    "queued": "pending",
    "running": "processing",
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
}


@router.post(SYNC_PATHS[0])
@router.post(SYNC_PATHS[1], include_in_schema=False)
async def sync(request: Request, state: State) -> Response:
    """Start a sync of one app instance (supasaasy's ``POST /sync``)."""
    started = time.perf_counter()
    job_id: str | None = None
    headers: dict[str, str] = {}  # the caller's RateLimit headers, on every answer
    try:
        key = bearer_key(state, request)
        headers = await limit(state, request, key)
        if key is None:
            raise SupasaasyError(401, UNAUTHORIZED, headers)
        body = _parsed(await read_body(request))
        app = await app_or_404(state, body["app_key"])
        resource_types = _resource_types(app, body.get("resource_types"))
        job = await start_sync(state, app, body["mode"], resource_types)
        job_id = str(job["id"])
        if body["immediate"]:
            final = await _finished_job(state, job["id"])
            if final is not None:
                answer = _immediate(final, started)
                return JSONResponse(answer, status_code=200, headers=headers)
        return JSONResponse(
            {
                "success": True,
                "job_id": job_id,
                "app_key": app["app_key"],
                "mode": body["mode"],
                "status": "pending",
                "total_tasks": len(_tasks(app, resource_types)),
                "resource_types": resource_types,
            },
            status_code=202,
            headers={**headers, "Location": f"/functions/v1/job-status/{job_id}"},
        )
    except SupasaasyError as refused:
        refused.headers = {**headers, **refused.headers}
        return closing_unless_read(request, refused).response()
    except Exception as exc:
        if is_transient(exc):
            raise  # 503: the database is away (api.problems)
        ids = {"job_id": job_id, "domain": DOMAIN}
        log.exception("POST /sync failed (job %s)", job_id, extra=ids)
        return closing_unless_read(request, SupasaasyError(500, "Internal server error")).response()


@router.options(SYNC_PATHS[0], include_in_schema=False)
@router.options(SYNC_PATHS[1], include_in_schema=False)
async def sync_preflight(request: Request, state: State) -> Response:
    return preflight(state, request)


@router.api_route(SYNC_PATHS[0], methods=OTHER_METHODS, include_in_schema=False)
@router.api_route(SYNC_PATHS[1], methods=OTHER_METHODS, include_in_schema=False)
async def sync_other_methods() -> Response:
    return SupasaasyError(405, "Method not allowed", headers={"Allow": "POST, OPTIONS"}).response()


def _parsed(raw: bytes) -> dict[str, Any]:
    """supasaasy's body checks, in its wording; ``mode`` and ``immediate`` filled in."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise SupasaasyError(400, "Invalid JSON body") from None
    if not isinstance(body, dict):
        raise SupasaasyError(400, "Invalid JSON body")
    app_key = body.get("app_key")
    if app_key is None or app_key == "":
        raise SupasaasyError(400, "Missing required field: app_key")
    if not isinstance(app_key, str) or not APP_KEY.fullmatch(app_key):
        raise SupasaasyError(400, "Invalid app_key format")
    mode = body.get("mode", "incremental")
    if mode not in ("full", "incremental"):
        raise SupasaasyError(400, "Invalid mode: must be 'full' or 'incremental'")
    types = body.get("resource_types")
    if types is not None and (
        not isinstance(types, list) or not all(isinstance(t, str) for t in types)
    ):
        raise SupasaasyError(400, "Invalid resource_types: must be an array of strings")
    immediate = body.get("immediate", False)
    if not isinstance(immediate, bool):
        raise SupasaasyError(400, "Invalid immediate: must be a boolean")
    return {"app_key": app_key, "mode": mode, "resource_types": types, "immediate": immediate}


def _resource_types(app: RowMapping, asked: list[str] | None) -> list[str]:
    if asked is None:
        return list(app["resources"])
    spec = CONNECTORS[app["connector"]]
    for resource_type in asked:
        if spec.resource(resource_type) is None:
            raise SupasaasyError(400, f"Unknown resource type: {resource_type}")
        if resource_type not in app["resources"]:
            raise SupasaasyError(
                400, f"Resource type {resource_type} is not synced for {app['app_key']}"
            )
    return list(dict.fromkeys(asked))


def _tasks(app: RowMapping | None, asked: list[str]) -> dict[str, set[str]]:
    """supasaasy's tasks of a run of ``app``: each resource synced on its own (not with a
    parent), by collection key, with the collections synced with it."""
    if app is None:
        return {}
    spec = CONNECTORS[app["connector"]]
    return {
        task.collection_key: {
            task.collection_key,
            *(child.collection_key for child in spec.children_of(task.resource_type)),
        }
        for task in spec.tasks(list(app["resources"]), asked)
    }


async def start_sync(
    state: ApiState, app: RowMapping, mode: SyncMode, resource_types: list[str]
) -> RowMapping:
    """Record a sync of ``app`` and its outbox row (the admin page's sync button too)."""
    request = SyncRequest(
        request_id=f"saas-{uuid.uuid4()}",
        domain=DOMAIN,
        scope=app["app_key"],
        mode=mode,
        trigger="http",
        actor="admin",
        params={"resource_types": resource_types},
    )
    try:
        job, _ = await submit(state, request, body=None, fingerprint=None, exclusive=True)
    except ActiveJobExists as exc:
        running = str(exc.job_id) if exc.job_id else None
        raise SupasaasyError(
            409, f"A sync of {app['app_key']} is already running", job_id=running
        ) from None
    return job


def _immediate(job: RowMapping, started: float) -> dict[str, Any]:
    """supasaasy's SyncResponse, from the finished job."""
    result = job["result"] or {}
    collections = list(result.get("collections", []))
    if job["status"] != "succeeded" and not collections:
        collections = [{"collection_key": None, "created": 0, "updated": 0, "deleted": 0,
                        "errors": 1, "error_messages": [job["error_message"]]}]  # fmt: skip
    totals = {
        f"total_{k}": sum(int(c.get(k, 0)) for c in collections)
        for k in ("created", "updated", "deleted", "errors")
    }
    return {
        "success": job["status"] == "succeeded" and totals["total_errors"] == 0,
        "app_key": job["scope"],
        "mode": result.get("mode", job["mode"]),
        "collections": collections,
        **totals,
        "duration_ms": round((time.perf_counter() - started) * 1000),
    }


@router.get("/functions/v1/job-status/{job_id}")
@router.get("/sync/jobs/{job_id}", include_in_schema=False)
async def job_status(job_id: str, request: Request, state: State) -> Response:
    """supasaasy's job status: state, progress percentage, per-collection counts."""
    try:
        await authenticated(state, request, lambda: _key_or_401(state, request))
        try:
            parsed = uuid.UUID(job_id)
        except ValueError:
            raise SupasaasyError(400, "Invalid job_id") from None
        async with autocommit(state.engine) as conn:
            job = await jobs.get_job(conn, parsed)
            if job is None or job["domain"] != DOMAIN:
                raise SupasaasyError(404, f"Unknown job_id: {job_id}")
            progress = await event_log.latest_event(conn, parsed, "progress")
            app = await saas.get_app(conn, job["scope"])
        return JSONResponse(_status(job, progress, app))
    except SupasaasyError as refused:
        return closing_unless_read(request, refused).response()


async def _finished_job(state: ApiState, job_id: uuid.UUID) -> RowMapping | None:
    """The job once it ended, within the immediate wait; None past it, or when the
    database went away meanwhile: the job is recorded, and the 202 says where to follow it."""
    try:
        return await wait_until_done(state, job_id, state.settings.saas_immediate_wait_s)
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.warning("POST /sync: lost the database while job %s ran; answering 202", job_id)
        return None


def _key_or_401(state: ApiState, request: Request) -> str:
    """The admin key, or a 401 that counts against the caller's failed authentications."""
    key = bearer_key(state, request)
    if key is None:
        raise Problem(401, UNAUTHORIZED)
    return key


def _status(
    job: RowMapping, progress: dict[str, Any] | None, app: RowMapping | None
) -> dict[str, Any]:
    result = job["result"] or {}
    collections = list(result.get("collections", []))
    # A run reports every collection it planned: its tasks are those, whatever the app's
    # resources are now; before it reports, they are worked out from the app's.
    tasks = _reported_tasks(collections) or _tasks(
        app, list(job["params"].get("resource_types") or [])
    )
    reported = _by_task(tasks, collections)
    failed = {key for key, c in reported.items() if c.get("errors")}
    total = len(tasks)
    if job["status"] in ("succeeded", "failed", "cancelled"):
        percentage = 100.0
        done = len(reported) - len(failed)
    else:
        seen = progress or {}
        # collections_done: a worker of the release before (it counted children too).
        done = min(int(seen.get("tasks_done", seen.get("collections_done", 0))), total)
        percentage = round(100.0 * done / total, 1) if total else 0.0
    return {
        "success": job["status"] != "failed",
        "job_id": str(job["id"]),
        "app_key": job["scope"],
        "mode": result.get("mode", job["mode"]),
        "status": SEED_STATUS[job["status"]],
        "progress_percentage": percentage,
        "total_tasks": total,
        "completed_tasks": done,
        "failed_tasks": len(failed),
        "processed_entities": int((progress or {}).get("processed", 0))
        if not collections
        else sum(int(c.get("processed", 0)) for c in collections),
        "collections": collections,
        "error": job["error_message"],
        "created_at": job["created_at"].isoformat(),
        "started_at": job["started_at"].isoformat() if job["started_at"] else None,
        "completed_at": job["finished_at"].isoformat() if job["finished_at"] else None,
    }


def _reported_tasks(collections: list[dict[str, Any]]) -> dict[str, set[str]]:
    """The tasks of the collections a run reported, by task key, with their collections."""
    tasks: dict[str, set[str]] = {}
    for collection in collections:
        key = str(collection.get("collection_key"))
        task = task_key_of(key)
        tasks.setdefault(task, {task}).add(key)
    return tasks


def _by_task(tasks: dict[str, set[str]], collections: list[dict[str, Any]]) -> dict[str, Any]:
    """Each task a run reported on, with its errors (its own and its children's)."""
    reported: dict[str, Any] = {}
    for key, members in tasks.items():
        mine = [c for c in collections if c.get("collection_key") in members]
        if mine:
            reported[key] = {"errors": sum(int(c.get("errors") or 0) for c in mine)}
    return reported
