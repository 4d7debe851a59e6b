"""One sync request end to end: record it, claim its job (with the scope's queued jobs it
applies together with), run them; never raises, and waits out database outages instead of
giving a request up."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from pydantic import ValidationError
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter

from db import claims, jobs
from db.claims import GroupLimits
from producers.kafka import AsyncProducer
from producers.quiet import Quiet
from schemas.events import SyncRequest
from schemas.log_context import job_logging, set_job_id
from schemas.signing import canonical_sha256
from schemas.topics import Topics
from streams import metrics
from streams.domains.base import DomainHandler
from streams.job_run import ClaimedJob, JobRunner
from streams.leases import JobLeases
from streams.outage import (
    OUTAGE_MAX_WAIT_S,
    Interrupted,
    Outage,
    is_transient_or_interrupted,
)
from streams.progress import ASYNC_COMMIT

log = logging.getLogger(__name__)

# How often a request whose job a live worker elsewhere runs looks again.
HOLDER_POLL_S = 0.2


class SyncPipeline:
    """Runs sync requests for the domains in ``handlers``; idempotent by ``request_id``.

    With ``leases``, a redelivered request whose job is still ``running`` takes it over
    when its worker is gone, and waits while it is alive (see streams/leases.py).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        producer: AsyncProducer,
        topics: Topics,
        handlers: Mapping[str, DomainHandler],
        *,
        progress_interval_s: float = 0.0,
        heartbeat_interval_s: float | None = None,
        leases: JobLeases | None = None,
        limits: GroupLimits | None = None,
    ) -> None:
        self._engine = engine
        self._topics = topics
        self._handlers = handlers
        self._leases = leases
        self._limits = limits or GroupLimits()
        self._runner = JobRunner(
            engine,
            producer,
            topics,
            progress_interval_s=progress_interval_s,
            heartbeat_interval_s=heartbeat_interval_s,
        )

    async def handle(
        self,
        topic: str,
        value: bytes,
        *,
        after: asyncio.Future[None] | None = None,
        release: asyncio.Future[None] | None = None,
        claimed_before: asyncio.Future[None] | None = None,
        claimed: asyncio.Future[None] | None = None,
    ) -> None:
        """Process one message from ``topic``. Failures end on the job and in the DLQ.

        With ``after`` (the previous request's ``release``), this request is prepared and
        staged at once but applies its writes only once ``after`` is done: one request's
        staging overlaps the previous one's writes, and the writes keep the topic's order.
        ``release`` is resolved when the next request may apply: once this request's
        transaction has committed (or it has failed, or was skipped). Likewise this
        request claims its job only once ``claimed_before`` is done, and resolves
        ``claimed`` once it has: claims follow the topic's order too.
        """
        try:
            if claimed_before is not None:
                await asyncio.wait([claimed_before])
            await self._handle(topic, value, after, release, claimed)
        finally:
            _resolve(claimed, None)
            _resolve(release, after)

    async def _handle(
        self,
        topic: str,
        value: bytes,
        after: asyncio.Future[None] | None,
        release: asyncio.Future[None] | None,
        claimed: asyncio.Future[None] | None,
    ) -> None:
        try:
            request = SyncRequest.model_validate_json(value)
        except ValidationError as exc:
            reason = f"invalid sync request: {exc.errors()[0]['msg']}"
            await self._runner.dead_letter(topic, value, reason, request_id="unknown")
            return
        handler = self._handlers.get(request.domain)
        if handler is None or topic != self._topics.requests(request.domain):
            reason = f"domain '{request.domain}' is not served on {topic}"
            await self._runner.dead_letter(topic, value, reason, request_id=request.request_id)
            return
        with job_logging(request_id=request.request_id, domain=request.domain):
            try:
                await self._run_until_done(topic, value, request, handler, after, release, claimed)
            except Exception:
                # Not an outage (those are waited out): a bug, which retrying cannot mend.
                log.exception("request %s could not be processed", request.request_id)
                await self._runner.dead_letter(
                    topic, value, "internal error; see worker log", request_id=request.request_id
                )

    async def _run_until_done(
        self,
        topic: str,
        value: bytes,
        request: SyncRequest,
        handler: DomainHandler,
        after: asyncio.Future[None] | None,
        release: asyncio.Future[None] | None,
        claimed: asyncio.Future[None] | None,
    ) -> None:
        """Run the request, waiting out database outages with backoff: meanwhile the agent
        consumes nothing and acks nothing, so the request is neither lost nor dead-lettered,
        and once PostgreSQL answers it runs exactly once (claim by request_id; attempts
        the outage interrupted are given back to the queue first)."""
        outage = Outage(f"request {request.request_id}")
        waits = metrics.DatabaseWaits(outage.note)
        interrupted: Interrupted | None = None
        try:
            async for retry in AsyncRetrying(
                retry=retry_if_exception(is_transient_or_interrupted),
                wait=wait_exponential_jitter(initial=0.2, max=OUTAGE_MAX_WAIT_S),
                before_sleep=waits,
                reraise=True,
            ):
                with retry:
                    try:
                        if interrupted is not None:
                            await self._give_back(interrupted.attempts)
                            interrupted = None
                        await self._run(topic, value, request, handler, after, release, claimed)
                    except Interrupted as exc:
                        interrupted = exc
                        raise
                    except asyncio.CancelledError:
                        if interrupted is not None:
                            await asyncio.shield(self._requeue(interrupted.attempts))
                        raise
        finally:
            waits.ended()
        outage.ended()

    async def _requeue(self, attempts: list[tuple[uuid.UUID, int]]) -> None:
        """The worker is stopping: give the attempts back if the database lets us."""
        try:
            await self._give_back(attempts)
        except Exception as exc:
            log.warning("could not requeue %d jobs (%s); the reconciler will", len(attempts), exc)

    async def _give_back(self, attempts: list[tuple[uuid.UUID, int]]) -> None:
        """Return running attempts to the queue (raises while the database is away)."""
        async with self._engine.begin() as conn:
            for job_id, attempt in attempts:
                await jobs.requeue_attempt(conn, job_id, attempt)

    async def _run(
        self,
        topic: str,
        value: bytes,
        request: SyncRequest,
        handler: DomainHandler,
        after: asyncio.Future[None] | None,
        release: asyncio.Future[None] | None,
        claimed: asyncio.Future[None] | None,
    ) -> None:
        """Claim and run the request's job, with the jobs it applies together with (or,
        first, the scope's jobs it must apply after); returns once it ended or was skipped."""
        waiting = Quiet(log, f"request {request.request_id}")
        while True:
            claim = await self._claim(topic, value, request, handler)
            if isinstance(claim, _Wait):
                waiting.failed(claim.reason)
                await asyncio.sleep(HOLDER_POLL_S)
                continue
            waiting.succeeded()
            if claim is None:
                return
            own = any(job.request.request_id == request.request_id for job in claim)
            if own:
                _resolve(claimed, None)  # the next message may claim the jobs after these
            done = release if own else asyncio.get_running_loop().create_future()
            try:
                await self._runner.run(topic, handler, claim, after, done)
            finally:
                _resolve(done, after)
                if self._leases is not None:
                    await self._leases.release(job.id for job in claim)
            if own:
                return
            after = done

    async def _claim(
        self, topic: str, value: bytes, request: SyncRequest, handler: DomainHandler
    ) -> list[ClaimedJob] | _Wait | None:
        """Record the request and claim what to run: its job, with the scope's queued jobs
        around it for a handler that ``groups_by_scope``; a running job whose worker is
        gone (its lock is free) is taken over. None: nothing to run (the job ended, runs
        here already, or the request was dead-lettered); _Wait: a live worker elsewhere
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
                await self._runner.dead_letter(topic, value, reason, request.request_id, own)
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
            if isinstance(rows, _Wait) or rows is None:
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
    ) -> list[RowMapping] | _Wait | None:
        """The job is running, not here: take it over if its worker is gone."""
        if self._leases is None:
            self._skip(request, "running")
            return None
        if own not in await self._leases.take([own]):
            return _Wait(f"waits: job {own} runs on a live worker")
        row = await claims.take_over(conn, own, attempt)
        if row is None:  # it ended or moved on meanwhile: look again
            await self._leases.release([own])
            return _Wait(f"waits: job {own} changed hands")
        log.warning(
            "job %s: attempt %s's worker is gone; taking it over as attempt %s",
            own,
            attempt,
            row["attempt"],
        )
        return [row]

    async def _claim_ids(
        self, conn: AsyncConnection, ids: list[uuid.UUID], own: uuid.UUID
    ) -> list[RowMapping] | _Wait:
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
                return _Wait(f"waits: job {own} was claimed elsewhere")
        await self._leases.release(locked - claimed)
        self._leases.adopt(claimed)
        return list(rows)


@dataclass(frozen=True)
class _Wait:
    """Nothing to run yet: another live worker has the job (``reason`` says how)."""

    reason: str


def _resolve(future: asyncio.Future[None] | None, after: asyncio.Future[None] | None) -> None:
    """Resolve ``future`` now, or once ``after`` is: a request that ends early (skipped,
    dead-lettered) must not let the next one apply before the one before it committed."""
    if future is None or future.done():
        return
    if after is None or after.done():
        future.set_result(None)
    else:
        after.add_done_callback(lambda _: _resolve(future, None))
