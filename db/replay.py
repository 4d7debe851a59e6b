"""What a replayed request does to its job: run it again only if it failed, or start a rerun.

A failed job applied nothing (its writes rolled back with the failure), so putting it back
in the queue cannot apply anything twice; any other known request id is left as it is and
the worker skips it (idempotency by ``request_id``). A rerun is a new job with a new request
id, recorded as ``trigger='cli'`` and ``params.rerun_of`` = the original request id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

import orjson
from sqlalchemy import func, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from db import event_log, jobs
from db.tables import sync_jobs
from schemas.events import AuditEvent, PayloadRef, SyncRequest, utcnow
from schemas.signing import canonical_sha256

Verdict = Literal["new", "requeued", "queued", "running", "done", "conflict"]
COPY_PAYLOAD = text(
    "INSERT INTO sync_payloads (job_id, body) SELECT :new, body FROM sync_payloads "
    "WHERE job_id = :old"
)
ACTOR = "syncbus replay"


class PayloadGone(Exception):
    """The original's stored payload was dropped: a rerun has nothing to run (roll back)."""


@dataclass(frozen=True)
class Plan:
    """What publishing ``request`` will do: ``publish`` False when it would only fail."""

    request: SyncRequest
    verdict: Verdict
    detail: str
    job_id: uuid.UUID | None = None

    @property
    def publish(self) -> bool:
        return self.verdict != "conflict"


def payload_sha(request: SyncRequest) -> str | None:
    """The fingerprint the worker records for the request's payload."""
    if request.payload is not None:
        return canonical_sha256(request.payload)
    return request.payload_ref.sha256 if request.payload_ref else None


async def plan_redrive(conn: AsyncConnection, request: SyncRequest, *, apply: bool) -> Plan:
    """How the worker will take ``request`` again; with ``apply``, a failed job goes back
    to the queue first (with an audit row) so that the worker runs it."""
    job = await jobs.get_job_by_request_id(conn, request.request_id)
    if job is None:
        return Plan(request, "new", "no job yet: the worker creates and runs it")
    status = job["status"]
    if job["payload_sha256"] != payload_sha(request):
        detail = f"request id already used with another payload (job {job['id']}): not sent"
        return Plan(request, "conflict", detail, job["id"])
    if status == "failed":
        if apply and not await _requeue_failed(conn, request, job["id"]):
            detail = f"job {job['id']} failed, and another run of {job['domain']}:{job['scope']}"
            return Plan(request, "conflict", f"{detail} is queued or running: not sent", job["id"])
        return Plan(request, "requeued", f"job {job['id']} failed: it runs again", job["id"])
    if status in ("queued", "running"):
        return Plan(request, status, f"job {job['id']} is {status}: the worker has it", job["id"])
    detail = f"job {job['id']} {status}: the worker skips it (--rerun runs it again)"
    return Plan(request, "done", detail, job["id"])


async def _requeue_failed(conn: AsyncConnection, request: SyncRequest, job_id: uuid.UUID) -> bool:
    """False when an exclusive job may not be queued: another of its scope is active."""
    stmt = (
        update(sync_jobs)
        .where(sync_jobs.c.id == job_id, sync_jobs.c.status == "failed")
        # published now: the reconciler leaves it to the message being sent (or resends
        # it after SYNCBUS_RECONCILE_AFTER_S if that message never arrives).
        .values(status="queued", finished_at=None, updated_at=func.now(), published_at=func.now())
    )
    try:
        async with conn.begin_nested():
            requeued = (await conn.execute(stmt)).rowcount
    except IntegrityError:  # ux_sync_jobs_one_active_exclusive
        return False
    if requeued:
        await event_log.insert_audit(conn, _audit("sync.replayed", request, job_id, {}))
    return True


async def plan_rerun(conn: AsyncConnection, request: SyncRequest, *, apply: bool) -> Plan:
    """A new job for ``request`` under a new request id; with ``apply`` it is created
    (queued, its payload copied) so the message sent next runs it."""
    new_id = uuid.uuid4()
    rerun = request.model_copy(
        update={
            "request_id": f"{request.request_id[:170]}-rerun-{new_id.hex[:12]}",
            "event_id": uuid.uuid4(),
            "occurred_at": utcnow(),
            "trigger": "cli",
            "actor": ACTOR,
            "params": {**request.params, "rerun_of": request.request_id},
        }
    )
    if request.payload_ref is not None:
        rerun = rerun.model_copy(
            update={"payload_ref": PayloadRef(job_id=new_id, sha256=request.payload_ref.sha256)}
        )
    detail = f"new job {new_id} ({rerun.request_id}), a rerun of {request.request_id}"
    if not apply:
        return Plan(rerun, "new", detail, new_id)
    inline = orjson.dumps(rerun.payload).decode() if rerun.payload is not None else None
    await jobs.insert_job(
        conn, rerun, job_id=new_id, payload_sha256=payload_sha(rerun), body=inline
    )
    if request.payload_ref is not None:
        copied = await conn.execute(
            COPY_PAYLOAD, {"new": new_id, "old": request.payload_ref.job_id}
        )
        if not copied.rowcount:
            raise PayloadGone(f"the payload of {request.request_id} is gone (payload retention)")
    data: dict[str, object] = {"rerun_of": request.request_id}
    await event_log.insert_audit(conn, _audit("sync.rerun", rerun, new_id, data))
    return Plan(rerun, "new", detail, new_id)


def _audit(
    action: str, request: SyncRequest, job_id: uuid.UUID, data: dict[str, object]
) -> AuditEvent:
    return AuditEvent(
        request_id=request.request_id,
        action=action,
        domain=request.domain,
        job_id=job_id,
        actor=ACTOR,
        data={"scope": request.scope, **data},
    )
