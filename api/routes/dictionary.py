"""Seed 004's routes: signed dictionary push, its status, and the admin queue stats."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.engine import RowMapping

from api.auth import (
    AdminOnly,
    admin_ok,
    authenticated,
    check_sender_network,
    check_signature,
)
from api.openapi import ADMIN, SIGNED
from api.problems import Problem, validation_problem
from api.state import ApiState, get_state
from api.submit import publish_row_soon, record
from db import jobs, payloads
from db.engine import autocommit
from schemas.dictionary import (
    DOMAIN,
    SEED_STATUS,
    DictionaryBatchHeader,
    DictionaryPush,
    PushAccepted,
    PushStatus,
    QueueStats,
    entries_shape_errors,
)
from schemas.events import SyncRequest
from schemas.json_value import Identifier
from schemas.settings import Settings
from schemas.signing import EMPTY_BODY_SHA256, body_sha256

router = APIRouter(tags=["dictionary (seed 004)"])
State = Annotated[ApiState, Depends(get_state)]

STATS_SQL = text(
    """
    SELECT count(*) FILTER (WHERE status = 'queued') AS pending,
           count(*) FILTER (WHERE status = 'running') AS processing,
           count(*) FILTER (WHERE status = 'succeeded') AS success,
           count(*) FILTER (WHERE status IN ('failed', 'cancelled')) AS failed,
           count(*) FILTER (WHERE status IN ('failed', 'cancelled')
                            AND finished_at > now() - make_interval(mins => :window))
               AS failed_recent,
           extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'queued')) AS oldest,
           extract(epoch FROM now() - min(started_at) FILTER (WHERE status = 'running'))
               AS oldest_running
    FROM sync_jobs WHERE domain = 'dictionary'
    """
)


@router.post(
    "/api/internal/dictionary-upserts",
    status_code=202,
    response_model=PushAccepted,
    responses={200: {"description": "Replay of a known requestId", "model": PushAccepted}},
    openapi_extra={
        "security": SIGNED,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": DictionaryPush.model_json_schema()}},
        },
    },
)
async def push_entries(request: Request, state: State) -> JSONResponse:
    """Queue a signed batch; the worker applies it. A known ``requestId`` replays (200)."""
    settings = state.settings
    check_sender_network(settings, request)
    body = await request.body()
    body_hash = body_sha256(body)
    signed_request_id = await authenticated(
        state, request, lambda: check_signature(settings, request, body_hash)
    )
    try:
        text_body = body.decode()
    except UnicodeDecodeError:
        raise Problem(400, "malformed JSON: the body is not UTF-8") from None
    # PostgreSQL parses the batch once, as it stores it, and hands back its header: the
    # api never decodes the entries. Every check below fails before the commit, so a
    # refused batch leaves nothing behind. The fingerprint is the body's hash (already
    # computed for the signature); a replay whose bytes differ but whose JSON is the same
    # is still recognised.
    job_id = uuid.uuid4()
    try:
        async with state.engine.begin() as conn:
            stored = await payloads.store_batch(conn, job_id, text_body)
            push = _accepted_header(stored, settings, signed_request_id)
            sync_request = SyncRequest(
                request_id=push.request_id,
                domain=DOMAIN,
                scope=push.lang,
                mode="incremental",
                trigger="http",
                actor=push.actor_username,
                params={"source": push.source, "payloadVersion": push.payload_version},
            )
            job, outbox_row = await record(
                conn,
                state,
                sync_request,
                job_id=job_id,
                body=None,
                fingerprint=body_hash,
                stored=True,
            )
            if outbox_row is None:
                same = job["domain"] == DOMAIN and (
                    job["payload_sha256"] == body_hash
                    or await payloads.same_stored_payload(conn, job, job_id)
                )
                raise _KnownRequest(job, same)  # and forget the copy just stored
    except payloads.NotJson as exc:
        raise Problem(400, f"malformed JSON: {exc}") from None
    except _KnownRequest as known:
        if not known.same:
            request_id = known.job["request_id"]
            raise Problem(
                409, f"requestId '{request_id}' was already used with another payload"
            ) from None
        job, created = known.job, False
    else:
        publish_row_soon(state, outbox_row)
        created = True
    answer = PushAccepted(
        request_id=push.request_id,
        job_id=str(job["id"]),
        status=SEED_STATUS[job["status"]],
        replay=not created,
    )
    return JSONResponse(answer.model_dump(by_alias=True), status_code=202 if created else 200)


class _KnownRequest(Exception):
    """The requestId has a job already: roll back, then answer a replay or a conflict."""

    def __init__(self, job: RowMapping, same: bool) -> None:
        super().__init__(str(job["id"]))
        self.job = job
        self.same = same


def _accepted_header(
    stored: payloads.StoredBatch, settings: Settings, signed_request_id: str | None
) -> DictionaryBatchHeader:
    """The batch's header and the shape of ``entries``, or the 4xx that refuses it. Each
    entry's content is the worker's to check, so a bad entry fails the job with an
    ``errorMessage``."""
    if stored.header is None:
        raise Problem(400, "the body must be a JSON object")
    errors: list[Any] = entries_shape_errors(
        stored.entries_kind, stored.entries, stored.first_not_object
    )
    try:
        push = DictionaryBatchHeader.model_validate(stored.header)
    except ValidationError as exc:
        errors = [*exc.errors(include_input=False), *errors]
    if errors:
        raise validation_problem(errors)
    if signed_request_id is not None and push.request_id != signed_request_id:
        raise Problem(400, "x-sync-request-id does not match requestId in the body")
    if settings.internal_sync_source and push.source != settings.internal_sync_source:
        raise Problem(403, f"source '{push.source}' is not accepted")
    if stored.entries > settings.dictionary_max_entries:
        raise Problem(
            413, f"{stored.entries} entries; at most {settings.dictionary_max_entries} per batch"
        )
    return push


def _status(row: RowMapping) -> PushStatus:
    result = row["result"] or {}
    return PushStatus(
        request_id=row["request_id"],
        job_id=str(row["id"]),
        status=SEED_STATUS[row["status"]],
        error_message=row["error_message"],
        attempts=row["attempt"],
        entries=result.get("entries"),
        created=row["created"],
        updated=row["updated"],
        unchanged=row["unchanged"],
        version=result.get("version"),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


@router.get(
    "/api/internal/dictionary-upserts/status",
    response_model=PushStatus,
    openapi_extra={"security": [*SIGNED, *ADMIN]},
)
async def push_status(
    request: Request,
    state: State,
    request_id: Annotated[Identifier, Query(alias="requestId", min_length=1, max_length=200)],
) -> JSONResponse:
    """A batch's state. Auth: the sender's signature over the request id, or admin."""
    settings = state.settings

    def check() -> str | None:
        if admin_ok(settings, request):
            return None
        check_sender_network(settings, request)
        return check_signature(settings, request, EMPTY_BODY_SHA256)

    signed = await authenticated(state, request, check)
    if signed is not None and signed != request_id:
        raise Problem(400, "x-sync-request-id does not match the requestId parameter")
    async with autocommit(state.engine) as conn:
        row = await jobs.get_job_by_request_id(conn, request_id)
    if row is None or row["domain"] != DOMAIN:
        raise Problem(404, f"no dictionary sync with requestId '{request_id}'")
    return JSONResponse(_status(row).model_dump(mode="json", by_alias=True))


@router.get(
    "/api/admin/dictionary/internal-sync/stats",
    response_model=QueueStats,
    dependencies=[AdminOnly],
)
async def queue_stats(
    state: State,
    window_minutes: Annotated[int, Query(alias="windowMinutes", ge=1, le=10080)] = 10,
) -> JSONResponse:
    """Queue depth for alerting: failed in the window, pending age, stuck processing."""
    async with autocommit(state.engine) as conn:
        row = (await conn.execute(STATS_SQL, {"window": window_minutes})).mappings().one()
    stats = QueueStats(
        pending=row["pending"],
        processing=row["processing"],
        success=row["success"],
        failed=row["failed"],
        oldest_pending_age_seconds=float(row["oldest"]) if row["oldest"] is not None else None,
        oldest_processing_age_seconds=(
            float(row["oldest_running"]) if row["oldest_running"] is not None else None
        ),
        failed_recent=row["failed_recent"],
        recent_window_minutes=window_minutes,
    )
    return JSONResponse(stats.model_dump(by_alias=True))
