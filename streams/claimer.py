"""Claiming what a request runs: its job, the scope's queued jobs around it, or a job
whose worker died (streams/leases.py)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db import claims, jobs, payloads
from db.claims import GroupLimits
from db.replay import payload_sha
from schemas.events import SyncRequest
from schemas.log_context import set_job_id
from streams import metrics
from streams.claimed import ClaimedJob
from streams.domains.base import DomainHandler
from streams.job_publish import JobPublisher
from streams.leases import JobLeases
from streams.progress import ASYNC_COMMIT

log = logging.getLogger(__name__)


class _ReusedRequestId(Exception):
    """A request id already recorded with another payload: the request goes to the DLQ."""

    def __init__(self, request_id: str, job_id: uuid.UUID) -> None:
        super().__init__(f"request_id {request_id} was already used with another payload")
        self.job_id = job_id


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
        sha = payload_sha(request)
        held: set[uuid.UUID] = set()  # locked or adopted by this claim, until it commits
        try:
            return await self._claim(topic, value, request, handler, inline, sha, held)
        except _ReusedRequestId as reused:
            # Sent once the claim's transaction is over: a dead letter waits out a broker
            # outage, and must not hold a pooled connection meanwhile.
            await self._publish.dead_letter(
                topic, value, str(reused), request.request_id, reused.job_id
            )
            return None
        except BaseException:
            if self._leases is not None:
                await self._leases.release(held)
            raise

    async def _claim(
        self,
        topic: str,
        value: bytes,
        request: SyncRequest,
        handler: DomainHandler,
        inline: str | None,
        sha: str | None,
        held: set[uuid.UUID],
    ) -> list[ClaimedJob] | Wait | None:
        async with self._engine.begin() as conn:
            # Safe without a WAL flush: the final commit flushes it, and until then the
            # message's offset is not committed, so a crash redelivers the request.
            await conn.execute(ASYNC_COMMIT)
            # Most requests come from an api or a timer that recorded the job already: look
            # it up first, one statement where the insert would take two.
            existing = await jobs.get_job_by_request_id(conn, request.request_id)
            if existing is not None:
                job, created = existing, False
            else:
                job, created = await jobs.insert_job(
                    conn, request, job_id=uuid.uuid4(), payload_sha256=sha, body=inline
                )
            own: uuid.UUID = job["id"]
            set_job_id(own)
            if (
                not created
                and inline is not None
                and not await payloads.same_payload(conn, job, sha, inline)
            ):
                raise _ReusedRequestId(request.request_id, own)
            if self._leases is not None and own in self._leases.local:
                self._skip(request, "running here already")
                return None
            status = job["status"]
            rows: list[Mapping[str, Any]] | Wait | None
            if getattr(handler, "groups_by_scope", False):
                rows = await self._claim_group(conn, request, job, held)
            elif status == "queued":
                rows = await self._claim_ids(conn, [own], own, held, {})
            elif status == "running":
                rows = await self._take_over(conn, request, own, int(job["attempt"]), held)
            else:
                self._skip(request, status)
                rows = None
            if isinstance(rows, Wait) or rows is None:
                return rows
        if self._leases is not None:
            self._leases.adopt(row["id"] for row in rows)  # committed: they run here now
        return [
            ClaimedJob(
                row=row,
                request=request if row["id"] == own else claims.request_of(row),
                first_seq=row["next_seq"],
                message=value if row["id"] == own else None,
            )
            for row in rows
        ]

    def _skip(self, request: SyncRequest, why: str) -> None:
        log.info("request %s is %s; skipping", request.request_id, why)
        metrics.job_finished(request.domain, "skipped")

    async def _take_over(
        self,
        conn: AsyncConnection,
        request: SyncRequest,
        own: uuid.UUID,
        attempt: int,
        held: set[uuid.UUID],
    ) -> list[Mapping[str, Any]] | Wait | None:
        """The job is running, not here: take it over if its worker is gone."""
        if self._leases is None:
            self._skip(request, "running")
            return None
        taken = await self._leases.take([own])
        held |= taken
        if own not in taken:
            return Wait(f"waits: job {own} runs on a live worker")
        return await self._claim_ids(conn, [own], own, held, {own: attempt})

    async def _claim_group(
        self, conn: AsyncConnection, request: SyncRequest, job: RowMapping, held: set[uuid.UUID]
    ) -> list[Mapping[str, Any]] | Wait | None:
        """The scope's jobs to run with the request's (db.claims.pick_group): a running one
        accepted before it, or its own, is taken over when its worker is gone."""
        own: uuid.UUID = job["id"]
        active = await claims.scope_active(
            conn, request.domain, request.scope, int(job["number"]), self._limits.max_jobs
        )
        dead: set[uuid.UUID] = set()
        if self._leases is None:  # no locks to tell: a running job is someone else's, alive
            here = {c.id for c in active if c.status == "running" and c.id != own}
        else:
            here = self._leases.local
            probe = [
                c.id
                for c in active
                if c.status == "running" and c.number <= job["number"] and c.id not in here
            ]
            dead = await self._leases.take(probe)
            held |= dead
        ids = claims.pick_group(active, own, self._limits, dead=dead, here=here)
        if not ids:
            if self._leases is not None:
                await self._leases.release(dead)
            if ids is None:
                return Wait(f"waits: a job of scope {request.scope} up to {own} runs elsewhere")
            self._skip(request, job["status"] if job["status"] != "queued" else "ended")
            return None
        attempts = {c.id: c.attempt for c in active if c.id in dead}
        return await self._claim_ids(conn, ids, own, held, attempts)

    async def _claim_ids(
        self,
        conn: AsyncConnection,
        ids: list[uuid.UUID],
        own: uuid.UUID,
        held: set[uuid.UUID],
        dead: dict[uuid.UUID, int],
    ) -> list[Mapping[str, Any]] | Wait:
        """Claim ``ids`` (in apply order): the queued ones no live worker is claiming, and
        those of ``dead`` (locked already; id -> the attempt their dead worker ran)."""
        if self._leases is None:
            return list(await claims.claim_ids(conn, ids))
        locked = await self._leases.take([job for job in ids if job not in dead]) | set(dead)
        held |= locked
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
        if chosen == [own]:  # nothing else to undo when it is lost: no savepoint round trips
            rows = await self._claim_rows(conn, chosen, dead)
            lost = not rows
        else:
            async with conn.begin_nested() as savepoint:
                rows = await self._claim_rows(conn, chosen, dead)
                lost = own in ids and own not in {row["id"] for row in rows}
                if lost:
                    await savepoint.rollback()  # the jobs claimed before it go back too
        if lost:  # a worker that claims without a lock got it first
            await self._leases.release(locked)
            return Wait(f"waits: job {own} was claimed elsewhere")
        claimed = {row["id"] for row in rows}
        await self._leases.release(locked - claimed)
        if not rows:  # the jobs before it, taken by others meanwhile: look again
            return Wait(f"waits: the jobs before job {own} were claimed elsewhere")
        held |= claimed
        return list(rows)

    async def _claim_rows(
        self, conn: AsyncConnection, chosen: list[uuid.UUID], dead: dict[uuid.UUID, int]
    ) -> list[Mapping[str, Any]]:
        queued = {row["id"]: row for row in await claims.claim_ids(
            conn, [job for job in chosen if job not in dead]
        )}  # fmt: skip
        rows: list[Mapping[str, Any]] = []
        for job in chosen:
            if job in dead:
                row = await claims.take_over(conn, job, dead[job])
                if row is not None:
                    log.warning(
                        "job %s: attempt %s's worker is gone; taking it over as attempt %s",
                        job,
                        dead[job],
                        row["attempt"],
                    )
                    rows.append(row)
            elif job in queued:
                rows.append(queued[job])
        return rows


@dataclass(frozen=True)
class Wait:
    """Nothing to run yet: another live worker has the job (``reason`` says how)."""

    reason: str
