"""One sync request end to end: record, claim, prepare, stage, apply, finish; never raises,
and waits out database outages instead of giving a request up."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter

from db import jobs
from db.errors import describe, is_transient
from producers.kafka import AsyncProducer
from schemas.events import AuditEvent, ChangeEvent, DeadLetter, SyncRequest
from schemas.jobs import JobCounts
from schemas.log_context import job_logging, set_job_id
from schemas.signing import canonical_sha256
from schemas.topics import DOMAINS, Topics
from streams import metrics
from streams.domains.base import DomainError, DomainHandler, JobContext
from streams.outage import (
    OUTAGE_MAX_WAIT_S,
    Interrupted,
    Outage,
    is_transient_or_interrupted,
)
from streams.progress import ASYNC_COMMIT, ProgressEmitter

log = logging.getLogger(__name__)


class SyncPipeline:
    """Runs sync requests for the domains in ``handlers``; idempotent by ``request_id``."""

    def __init__(
        self,
        engine: AsyncEngine,
        producer: AsyncProducer,
        topics: Topics,
        handlers: Mapping[str, DomainHandler],
        *,
        progress_interval_s: float = 0.0,
        heartbeat_interval_s: float | None = None,
    ) -> None:
        self._engine = engine
        self._progress_interval_s = progress_interval_s
        self._heartbeat_interval_s = heartbeat_interval_s
        self._producer = producer
        self._topics = topics
        self._handlers = handlers
        self._domains = {topics.requests(domain): domain for domain in DOMAINS}

    async def handle(
        self,
        topic: str,
        value: bytes,
        *,
        after: asyncio.Future[None] | None = None,
        release: asyncio.Future[None] | None = None,
    ) -> None:
        """Process one message from ``topic``. Failures end on the job and in the DLQ.

        With ``after`` (the previous request's ``release``), this request is prepared and
        staged at once but applies its writes only once ``after`` is done: one request's
        staging overlaps the previous one's writes, and the writes keep the topic's order.
        ``release`` is resolved when the next request may apply: once this request's
        transaction has committed (or it has failed, or was skipped).
        """
        try:
            await self._handle(topic, value, after, release)
        finally:
            _resolve(release, after)

    async def _handle(
        self,
        topic: str,
        value: bytes,
        after: asyncio.Future[None] | None,
        release: asyncio.Future[None] | None,
    ) -> None:
        try:
            request = SyncRequest.model_validate_json(value)
        except ValidationError as exc:
            reason = f"invalid sync request: {exc.errors()[0]['msg']}"
            await self._dead_letter(topic, value, reason, request_id="unknown")
            return
        handler = self._handlers.get(request.domain)
        if handler is None or topic != self._topics.requests(request.domain):
            reason = f"domain '{request.domain}' is not served on {topic}"
            await self._dead_letter(topic, value, reason, request_id=request.request_id)
            return
        with job_logging(request_id=request.request_id, domain=request.domain):
            try:
                await self._run_until_done(topic, value, request, handler, after, release)
            except Exception:
                # Not an outage (those are waited out): a bug, which retrying cannot mend.
                log.exception("request %s could not be processed", request.request_id)
                await self._dead_letter(
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
    ) -> None:
        """Run the request, waiting out database outages with backoff: meanwhile the agent
        consumes nothing and acks nothing, so the request is neither lost nor dead-lettered,
        and once PostgreSQL answers it runs exactly once (claim by request_id; an attempt
        the outage interrupted is given back to the queue first)."""
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
                            await self._give_back(interrupted.job_id, interrupted.attempt)
                            interrupted = None
                        await self._run(topic, value, request, handler, after, release)
                    except Interrupted as exc:
                        interrupted = exc
                        raise
                    except asyncio.CancelledError:
                        if interrupted is not None:
                            job, attempt = interrupted.job_id, interrupted.attempt
                            await asyncio.shield(self._requeue(job, attempt))
                        raise
        finally:
            waits.ended()
        outage.ended()

    async def _give_back(self, job_id: uuid.UUID, attempt: int) -> bool:
        """Return a running attempt to the queue (raises while the database is away)."""
        async with self._engine.begin() as conn:
            return await jobs.requeue_attempt(conn, job_id, attempt)

    async def _run(
        self,
        topic: str,
        value: bytes,
        request: SyncRequest,
        handler: DomainHandler,
        after: asyncio.Future[None] | None,
        release: asyncio.Future[None] | None,
    ) -> None:
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
            set_job_id(job["id"])
            if (
                not created
                and inline is not None
                and not await jobs.same_payload(conn, job, sha, inline)
            ):
                reason = f"request_id {request.request_id} was already used with another payload"
                await self._dead_letter(topic, value, reason, request.request_id, job["id"])
                return
            claimed = await jobs.claim(conn, request.request_id)
            if claimed is None:
                log.info("request %s is %s; skipping", request.request_id, job["status"])
                metrics.job_finished(request.domain, "skipped")
                return
            first_seq = await jobs.next_event_seq(conn, claimed["id"])
        started = time.monotonic()

        job_id: uuid.UUID = claimed["id"]
        emitter = ProgressEmitter(
            self._engine,
            self._producer,
            self._topics.progress,
            job_id=job_id,
            request_id=request.request_id,
            domain=request.domain,
            first_seq=first_seq,
            progress_interval_s=self._progress_interval_s,
            attempt=claimed["attempt"],
        )
        ctx = JobContext(job_id=job_id, request=request, emitter=emitter)
        done = asyncio.Event()
        heartbeat = asyncio.create_task(self._keep_alive(job_id, claimed["attempt"], done))
        try:
            if not getattr(handler, "announces_start", False):
                await emitter.log(
                    f"Starting {request.domain} sync {request.request_id} "
                    f"(attempt {claimed['attempt']})"
                )
            outcome = await self._execute(topic, value, request, handler, ctx, after, release)
            took = time.monotonic() - started
            metrics.job_finished(request.domain, outcome, took)
            level = logging.INFO if outcome == "succeeded" else logging.WARNING
            log.log(level, "job %s %s after %.2fs", job_id, outcome, took)
        except asyncio.CancelledError:
            # The worker is stopping mid-run (its transaction has rolled back). Left
            # 'running', the redelivered message would be skipped and the job only requeued
            # once stale, to run after the requests behind it: hand it back now instead.
            await asyncio.shield(self._requeue(job_id, claimed["attempt"]))
            raise
        except jobs.AttemptSuperseded:
            # Requeued as stale while this attempt was slow: another attempt owns the job,
            # and this one's writes rolled back.
            log.warning(
                "job %s: attempt %s was superseded; its writes were rolled back",
                job_id,
                claimed["attempt"],
            )
            metrics.job_finished(request.domain, "superseded")
        except Exception as exc:
            if is_transient(exc):
                raise Interrupted(job_id, claimed["attempt"]) from exc
            raise
        finally:
            done.set()
            await heartbeat

    async def _requeue(self, job_id: uuid.UUID, attempt: int) -> None:
        """The worker is stopping: give the attempt back if the database lets us."""
        try:
            if await self._give_back(job_id, attempt):
                log.info("job %s goes back to the queue: the worker is stopping", job_id)
        except Exception as exc:
            log.warning("could not requeue job %s (%s); the reconciler will", job_id, describe(exc))

    async def _keep_alive(self, job_id: uuid.UUID, attempt: int, done: asyncio.Event) -> None:
        """Heartbeat the claimed job until ``done``, also while it waits for the previous
        request or runs a long step that emits no event: the reconciler requeues a
        running job whose heartbeat is older than SYNCBUS_JOB_STALE_AFTER_S."""
        if self._heartbeat_interval_s is None:
            return
        while True:
            try:
                await asyncio.wait_for(done.wait(), self._heartbeat_interval_s)
                return
            except TimeoutError:
                pass
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(ASYNC_COMMIT)
                    await jobs.heartbeat(conn, job_id, attempt)
            except Exception as exc:  # the next beat tries again; the job reports failures
                log.warning("heartbeat of job %s failed: %s", job_id, describe(exc))

    async def _execute(
        self,
        topic: str,
        value: bytes,
        request: SyncRequest,
        handler: DomainHandler,
        ctx: JobContext,
        after: asyncio.Future[None] | None,
        release: asyncio.Future[None] | None,
    ) -> str:
        """Run the claimed job to its end: 'succeeded' or 'failed' (recorded as such)."""
        job_id, emitter = ctx.job_id, ctx.emitter
        try:
            prepared = await handler.prepare(ctx)
            async with self._engine.begin() as conn:
                raw = await conn.get_raw_connection()
                assert raw.driver_connection is not None
                staged = await handler.stage(ctx, prepared, raw.driver_connection)
                if after is not None:
                    await asyncio.wait([after])
                outcome = await handler.apply(ctx, staged, raw.driver_connection)
                await jobs.finish(
                    conn,
                    job_id,
                    attempt=emitter.attempt,
                    status="succeeded",
                    counts=outcome.counts,
                    result=outcome.result,
                )
                for line in [*outcome.summary, "=== Sync Complete ===", *outcome.epilogue]:
                    await emitter.emit_in(conn, "log", {"message": line})
                await emitter.emit_in(
                    conn,
                    "complete",
                    {
                        "status": "completed",
                        "success": True,
                        "error": None,
                        "counts": outcome.counts.model_dump(),
                    },
                )
                audit = self._audit(request, job_id, True, outcome.counts.model_dump())
                await jobs.insert_audit(conn, audit)
            # Committed: the next request may apply while this one publishes. Not sooner:
            # its diff reads a snapshot, which must already hold these writes.
            _resolve(release, after)
        except DomainError as exc:
            emitter.discard()
            failure = _Failure(str(exc), exc.details, exc.result)
            await self._fail(topic, value, request, job_id, emitter, failure)
            return "failed"
        except Exception as exc:
            emitter.discard()
            if is_transient(exc) or isinstance(exc, jobs.AttemptSuperseded):
                raise  # an outage is waited out, never recorded as the job's failure
            log.exception("job %s (%s) failed", job_id, request.request_id)
            message = f"internal error ({type(exc).__name__}); see worker log for job {job_id}"
            await self._fail(topic, value, request, job_id, emitter, _Failure(message))
            return "failed"
        emitter.flush()
        self._publish_audit(audit)
        self._publish_changes(request.domain, outcome.changes)
        return "succeeded"

    def _publish_changes(self, domain: str, changes: list[ChangeEvent]) -> None:
        topic = self._topics.changes(domain)
        for change in changes:
            self._producer.send_nowait(
                topic, change.to_json(), key=change.key, headers=change.kafka_headers()
            )

    async def _fail(
        self,
        topic: str,
        value: bytes,
        request: SyncRequest,
        job_id: uuid.UUID,
        emitter: ProgressEmitter,
        failure: _Failure,
    ) -> None:
        message = failure.message
        audit = self._audit(request, job_id, False, {"error": message})
        async with self._engine.begin() as conn:
            await jobs.finish(
                conn,
                job_id,
                attempt=emitter.attempt,
                status="failed",
                counts=JobCounts(errors=1),
                result=failure.result,
                error_message=message,
                error_details=failure.details,
            )
            await emitter.emit_in(conn, "log", {"message": f"Sync failed: {message}"})
            await emitter.emit_in(
                conn, "error", {"status": "failed", "success": False, "error": message}
            )
            await jobs.insert_audit(conn, audit)
        emitter.flush()
        self._publish_audit(audit)
        await self._dead_letter(topic, value, message, request.request_id, job_id)

    def _audit(
        self, request: SyncRequest, job_id: uuid.UUID, succeeded: bool, data: dict[str, Any]
    ) -> AuditEvent:
        # Seed 000 names scheduled runs sync.scheduled / sync.scheduled_failed.
        if request.trigger == "schedule":
            action = "sync.scheduled" if succeeded else "sync.scheduled_failed"
        else:
            action = "sync.succeeded" if succeeded else "sync.failed"
        return AuditEvent(
            request_id=request.request_id,
            action=action,
            domain=request.domain,
            job_id=job_id,
            actor=request.actor,
            data={"trigger": request.trigger, "scope": request.scope, **data},
        )

    def _publish_audit(self, event: AuditEvent) -> None:
        self._producer.send_nowait(
            self._topics.audit, event.to_json(), key=event.domain, headers=event.kafka_headers()
        )

    async def _dead_letter(
        self,
        topic: str,
        value: bytes,
        reason: str,
        request_id: str,
        job_id: uuid.UUID | None = None,
    ) -> None:
        letter = DeadLetter(
            request_id=request_id,
            source_topic=topic,
            reason=reason,
            job_id=job_id,
            original=value.decode("utf-8", errors="replace"),
        )
        try:
            await self._producer.send(
                self._topics.dlq, letter.to_json(), key=request_id, headers=letter.kafka_headers()
            )
        except Exception:
            log.exception("could not publish dead letter for %s", request_id)
            return
        metrics.DEAD_LETTERS.labels(self._domains.get(topic, "unknown")).inc()


@dataclass(frozen=True)
class _Failure:
    """Why a job failed: the message, details for operators, and what the handler could
    still report (``result``, e.g. each source's outcome)."""

    message: str
    details: dict[str, Any] | None = None
    result: dict[str, Any] | None = None


def _resolve(future: asyncio.Future[None] | None, after: asyncio.Future[None] | None) -> None:
    """Resolve ``future`` now, or once ``after`` is: a request that ends early (skipped,
    dead-lettered) must not let the next one apply before the one before it committed."""
    if future is None or future.done():
        return
    if after is None or after.done():
        future.set_result(None)
    else:
        after.add_done_callback(lambda _: _resolve(future, None))
