"""Seeds 000 and 003: the internal models-sync trigger, and the admin history/trigger routes."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.engine import RowMapping

from api.auth import AdminOnly, authenticated
from api.openapi import INTERNAL
from api.problems import Problem
from api.state import ApiState, get_state
from api.submit import submit, wait_until_done
from db.engine import autocommit
from db.jobs import ActiveJobExists
from schemas.events import SyncRequest, SyncTrigger
from schemas.json_value import text_problem
from schemas.models import DOMAIN, ModelSyncLogEntry, SourceReport
from schemas.settings import Settings
from schemas.signing import body_hmac_hex, secret_matches

router = APIRouter(tags=["models (seeds 000, 003)"])
State = Annotated[ApiState, Depends(get_state)]
SCOPE = "default"
POLL_S = 0.1

HISTORY_SQL = text("SELECT * FROM model_sync_log ORDER BY sync_started_at DESC LIMIT :limit")


def check_internal_auth(settings: Settings, request: Request, body: bytes) -> None:
    """Seed 000: ``Authorization: Bearer <INTERNAL_SYNC_TOKEN>`` or ``X-Signature`` = hex
    HMAC-SHA256 of the exact body with ``INTERNAL_SYNC_SECRET`` (both constant-time)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and secret_matches(settings.internal_sync_tokens, token.strip()):
        return
    signature = request.headers.get("x-signature", "").strip().lower().removeprefix("sha256=")
    if signature:
        expected = [body_hmac_hex(secret, body) for secret in settings.internal_sync_secrets]
        if secret_matches(expected, signature):
            return
    raise Problem(
        401,
        "internal auth required: 'Authorization: Bearer <INTERNAL_SYNC_TOKEN>' or "
        "'X-Signature: <hex HMAC-SHA256 of the body>'",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _requested_by(body: bytes) -> str | None:
    if not body.strip():
        return None
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Problem(400, "the body must be a JSON object")
    source = data.get("source")
    if source is not None and (not isinstance(source, str) or len(source) > 200):
        raise Problem(422, "source: must be a string of at most 200 characters")
    if source is not None and (reason := text_problem(source, controls=False)):
        raise Problem(422, f"source: {reason}")
    return source


async def _start(
    state: ApiState, *, trigger: SyncTrigger, actor: str | None, requested_by: str | None
) -> RowMapping:
    request = SyncRequest(
        request_id=f"models-{uuid.uuid4()}",
        domain=DOMAIN,
        scope=SCOPE,
        mode="full",
        trigger=trigger,
        actor=actor,
        params={"source": requested_by} if requested_by else {},
    )
    try:
        job, _ = await submit(state, request, body=None, fingerprint=None, exclusive=True)
    except ActiveJobExists as exc:
        running = str(exc.job_id) if exc.job_id else None
        raise Problem(
            409,
            "a models sync is already running",
            headers={"X-Sync-Log-ID": running} if running else None,
            syncLogId=running,
        ) from None
    return job


def _sources(job: RowMapping) -> list[dict[str, Any]]:
    return list((job["result"] or {}).get("sources", []))


@router.post("/api/internal/sync-models", openapi_extra={"security": INTERNAL})
async def internal_sync_models(request: Request, state: State) -> JSONResponse:
    """Run a models sync for a scheduler (no user). Waits for the result up to a bound."""
    started = time.perf_counter()
    body = await request.body()
    await authenticated(state, request, lambda: check_internal_auth(state.settings, request, body))
    requested_by = _requested_by(body)
    job = await _start(state, trigger="schedule", actor=None, requested_by=requested_by)
    final = await wait_until_done(state, job["id"], state.settings.models_wait_s)
    headers = {"X-Sync-Log-ID": str(job["id"])}
    if final is None:
        content: dict[str, Any] = {
            "success": True,
            "status": "running",
            "syncLogId": str(job["id"]),
        }
        status_code = 202
    else:
        headers["X-Models-Processed"] = str(final["discovered"])
        content = {
            "success": final["status"] == "succeeded",
            "status": final["status"],
            "syncLogId": str(final["id"]),
            "modelsProcessed": final["discovered"],
            "added": final["created"],
            "updated": final["updated"],
            "removed": final["deleted"],
            "unchanged": final["unchanged"],
            "sources": _sources(final),
            "error": final["error_message"],
        }
        status_code = 200 if final["status"] == "succeeded" else 502
    headers["X-Response-Time"] = f"{(time.perf_counter() - started) * 1000:.0f}ms"
    return JSONResponse(content, status_code=status_code, headers=headers)


@router.get(
    "/api/admin/sync-models", response_model=list[ModelSyncLogEntry], dependencies=[AdminOnly]
)
async def sync_history(
    state: State, limit: Annotated[int, Query(ge=1, le=500)] = 20
) -> list[ModelSyncLogEntry]:
    """Recent models syncs, newest first."""
    async with autocommit(state.engine) as conn:
        rows = (await conn.execute(HISTORY_SQL, {"limit": limit})).mappings().all()
    return [
        ModelSyncLogEntry(
            id=str(r["id"]),
            status=r["status"],
            trigger=r["trigger"],
            sync_started_at=r["sync_started_at"],
            sync_completed_at=r["sync_completed_at"],
            models_processed=r["models_processed"],
            models_added=r["models_added"],
            models_updated=r["models_updated"],
            models_removed=r["models_removed"],
            error_message=r["error_message"],
            added_by_user_id=r["added_by_user_id"],
            sources=[SourceReport.model_validate(s) for s in r["sources"] or []],
        )
        for r in rows
    ]


@router.post("/api/admin/sync-models", status_code=202, dependencies=[AdminOnly])
async def trigger_sync(state: State) -> JSONResponse:
    """Start a models sync now; follow it at ``eventsUrl``."""
    job = await _start(state, trigger="http", actor="admin", requested_by="admin")
    return JSONResponse(
        {
            "syncLogId": str(job["id"]),
            "status": job["status"],
            "eventsUrl": f"/v1/syncs/{job['id']}/events",
        },
        status_code=202,
        headers={"X-Sync-Log-ID": str(job["id"]), "Location": f"/v1/syncs/{job['id']}"},
    )
