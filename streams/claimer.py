"""Claiming what a request runs: its job, the scope's queued jobs around it, or a job
whose worker died (streams/leases.py)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import orjson
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db import claims, jobs
from db.claims import GroupLimits
from schemas.events import SyncRequest
from schemas.log_context import set_job_id
from schemas.signing import canonical_sha256
from streams import metrics
from streams.claimed import ClaimedJob
from streams.domains.base import DomainHandler
from streams.job_publish import JobPublisher
from streams.leases import JobLeases
from streams.progress import ASYNC_COMMIT

log = logging.getLogger(__name__)


class Claimer:
    """Records a request and claims the jobs it runs (see :meth:`claim`)."""

    def __init__(
        self,
        engine: AsyncEngine,
        publish: JobPublisher,
        leases: JobLeases | None,
        limits: GroupLimits,
    ) -> None:
        self._engine = engine
        self._publish = publish
        self._leases = leases
        self._limits = limits

    async def claim(
        self, topic: str, value: bytes, request: SyncRequest, handler: DomainHandler
    ) -> list[ClaimedJob] | Wait | None:
        """Record the request and claim what to run: its job, with the scope's queued jobs
        around it for a handler that ``groups_by_scope``; a running job whose worker is
        gone (its lock is free) is taken over. None: nothing to run (the job ended, runs
        here already, or the request was dead-lettered); Wait: a live worker elsewhere
        runs the job, or is claiming it, now."""
        inline = orjson.dumps(request.payload).decode() if request.payload is not None else None
        sha = request.payload_ref.sha256 if request.payload_ref else None
        if request.payload is not None:
            sha = canonical_sha256(request.payload)
        async with self._engine.begin() as conn:
            # Safe without a WAL flush: the final commit flushes it, and until then the
            # message's offset is not committed, so a crash redelivers the request.
            await conn.execute(ASYNC_COMMIT)
            job, created = await jobs.insert_job(
                conn, request, job_id=uuid.uuid4(), payload_sha256=sha, body=inline
            )
            own: uuid.UUID = job["id"]
            set_job_id(own)
            if (
                not created
                and inline is not None
                and not await jobs.same_payload(conn, job, sha, inline)
            ):
                reason = f"request_id {request.request_id} was already used with another payload"
                await self._publish.dead_letter(topic, value, reason, request.request_id, own)
                return None
            if self._leases is not None and own in self._leases.local:
                self._skip(request, "running here already")
                return None
            status = job["status"]
            if getattr(handler, "groups_by_scope", False):
                active = await claims.scope_active(
                    conn, request.domain, request.scope, self._limits.max_jobs * 4
                )
                status = next((c.status for c in active if c.id == own), status)
                ids = claims.pick_group(active, own, self._limits)
            else:
                ids = [own] if status == "queued" else []
            if not ids:
                if status != "running":
                    self._skip(request, status)
                    return None
                rows = await self._take_over(conn, request, own, int(job["attempt"]))
            else:
                rows = await self._claim_ids(conn, ids, own)
            if isinstance(rows, Wait) or rows is None:
                return rows
            seqs = await claims.next_event_seqs(conn, [row["id"] for row in rows])
        return [
            ClaimedJob(
                row=row,
                request=request if row["id"] == own else claims.request_of(row),
                first_seq=seqs[row["id"]],
                message=value if row["id"] == own else None,
            )
            for row in rows
        ]

    def _skip(self, request: SyncRequest, why: str) -> None:
        log.info("request %s is %s; skipping", request.request_id, why)
        metrics.job_finished(request.domain, "skipped")

    async def _take_over(
        self, conn: AsyncConnection, request: SyncRequest, own: uuid.UUID, attempt: int
    ) -> list[RowMapping] | Wait | None:
        """The job is running, not here: take it over if its worker is gone."""
        if self._leases is None:
            self._skip(request, "running")
            return None
        if own not in await self._leases.take([own]):
            return Wait(f"waits: job {own} runs on a live worker")
        row = await claims.take_over(conn, own, attempt)
        if row is None:  # it ended or moved on meanwhile: look again
            await self._leases.release([own])
            return Wait(f"waits: job {own} changed hands")
        log.warning(
            "job %s: attempt %s's worker is gone; taking it over as attempt %s",
            own,
            attempt,
            row["attempt"],
        )
        return [row]

    async def _claim_ids(
        self, conn: AsyncConnection, ids: list[uuid.UUID], own: uuid.UUID
    ) -> list[RowMapping] | Wait:
        """Claim the queued ``ids`` (in apply order) that no live worker is claiming."""
        if self._leases is None:
            return list(await claims.claim_ids(conn, ids))
        locked = await self._leases.take(ids)
        chosen: list[uuid.UUID] = []
        if own in ids:
            # The request's own job is claimed even when its lock is held elsewhere: a
            # worker about to claim it too loses the claim below, and a frozen worker that
            # held it has lost it to the reconciler (it was requeued as stale).
            at = ids.index(own)
            chosen = [job for job in ids[:at] if job in locked] + [own]
            for job in ids[at + 1 :]:
                if job not in locked:
                    break
                chosen.append(job)
        else:
            chosen = [job for job in ids if job in locked]
        async with conn.begin_nested() as savepoint:
            rows = await claims.claim_ids(conn, chosen)
            claimed = {row["id"] for row in rows}
            if own in ids and own not in claimed:  # a worker that claims without a lock
                await savepoint.rollback()
                await self._leases.release(locked)
                return Wait(f"waits: job {own} was claimed elsewhere")
        await self._leases.release(locked - claimed)
        self._leases.adopt(claimed)
        return list(rows)


@dataclass(frozen=True)
class Wait:
    """Nothing to run yet: another live worker has the job (``reason`` says how)."""

    reason: str
