"""Running claimed jobs to their end: one, or a scope's run of them in one transaction.

Each job of a group stays its own job: its own stage and apply (each in a savepoint), its
counts, events, audit rows and outcome. A job that fails rolls back alone and is recorded
as failed in the same transaction, while the others apply; one commit ends them all.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection as PsycopgConnection
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db import jobs
from db.errors import describe, is_transient
from producers.kafka import AsyncProducer
from schemas.events import AuditEvent, DeadLetter, ProgressType, SyncRequest
from schemas.jobs import JobCounts
from schemas.log_context import job_logging, set_job_id
from schemas.topics import DOMAINS, Topics
from streams import metrics
from streams.domains.base import DomainError, DomainHandler, JobContext, Outcome
from streams.outage import Interrupted
from streams.progress import ASYNC_COMMIT, ProgressEmitter

log = logging.getLogger(__name__)


@dataclass
class ClaimedJob:
    """A job this worker claimed: its row, the request it runs, and the message that
    carried it (None for a job claimed along with another request's message)."""

    row: RowMapping
    request: SyncRequest
    first_seq: int
    message: bytes | None = None
    ctx: JobContext | None = None
    prepared: Any = None
    staged: Any = None
    outcome: Outcome | None = None
    audit: AuditEvent | None = None
    failure: Failure | None = None
    superseded: bool = False

    @property
    def id(self) -> uuid.UUID:
        job_id: uuid.UUID = self.row["id"]
        return job_id

    @property
    def attempt(self) -> int:
        return int(self.row["attempt"])

    @property
    def emitter(self) -> ProgressEmitter:
        assert self.ctx is not None
        return self.ctx.emitter

    def context(self) -> JobContext:
        assert self.ctx is not None
        return self.ctx


@dataclass(frozen=True)
class Failure:
    """Why a job failed: the message, details for operators, and what the handler could
    still report (``result``, e.g. each source's outcome)."""

    message: str
    details: dict[str, Any] | None = None
    result: dict[str, Any] | None = None


@contextmanager
def logging_for(job: ClaimedJob) -> Iterator[None]:
    """Log lines about ``job`` name it, whichever request's message claimed it."""
    with job_logging(request_id=job.request.request_id, domain=job.request.domain):
        set_job_id(job.id)
        yield


class JobRunner:
    """Runs claimed jobs: prepare, stage, wait for the previous request, apply, finish."""

    def __init__(
        self,
        engine: AsyncEngine,
        producer: AsyncProducer,
        topics: Topics,
        *,
        progress_interval_s: float = 0.0,
        heartbeat_interval_s: float | None = None,
    ) -> None:
        self._engine = engine
        self._producer = producer
        self._topics = topics
        self._progress_interval_s = progress_interval_s
        self._heartbeat_interval_s = heartbeat_interval_s
        self._domains = {topics.requests(domain): domain for domain in DOMAINS}

    async def run(
        self,
        topic: str,
        handler: DomainHandler,
        group: Sequence[ClaimedJob],
        after: asyncio.Future[None] | None,
        release: asyncio.Future[None] | None,
    ) -> None:
        """Run ``group`` (claimed, in apply order) to its end; ``release`` is resolved once
        its transaction committed. Raises Interrupted when an outage stopped it."""
        defer = bool(getattr(handler, "groups_by_scope", False))
        for job in group:
            emitter = self._emitter(job, defer)
            job.ctx = JobContext(job_id=job.id, request=job.request, emitter=emitter)
        started = time.monotonic()
        done = asyncio.Event()
        heartbeat = asyncio.create_task(self._keep_alive(group, done))
        try:
            if not getattr(handler, "announces_start", False):
                for job in group:
                    await job.emitter.log(
                        f"Starting {job.request.domain} sync {job.request.request_id} "
                        f"(attempt {job.attempt})"
                    )
            await self._execute(topic, handler, group, after, release)
        except asyncio.CancelledError:
            # The worker is stopping mid-run (its transaction has rolled back). Left
            # 'running', the redelivered message would wait for a holder that is gone:
            # hand the jobs back now instead.
            await asyncio.shield(self.requeue(group))
            raise
        except Exception as exc:
            if is_transient(exc):
                raise Interrupted([(job.id, job.attempt) for job in group]) from exc
            raise
        finally:
            done.set()
            await heartbeat
        took = time.monotonic() - started
        metrics.GROUP_SIZE.labels(group[0].request.domain).observe(len(group))
        if len(group) > 1:
            log.info(
                "applied %d jobs of scope %s in one transaction in %.2fs",
                len(group),
                group[0].request.scope,
                took,
            )
        for job in group:
            outcome = _outcome(job)
            metrics.job_finished(job.request.domain, outcome, took)
            with logging_for(job):
                if job.superseded:
                    log.warning(
                        "job %s: attempt %s was superseded; its writes were rolled back",
                        job.id,
                        job.attempt,
                    )
                else:
                    level = logging.INFO if outcome == "succeeded" else logging.WARNING
                    log.log(level, "job %s %s after %.2fs", job.id, outcome, took)

    def _emitter(self, job: ClaimedJob, defer: bool) -> ProgressEmitter:
        return ProgressEmitter(
            self._engine,
            self._producer,
            self._topics.progress,
            job_id=job.id,
            request_id=job.request.request_id,
            domain=job.request.domain,
            first_seq=job.first_seq,
            progress_interval_s=self._progress_interval_s,
            attempt=job.attempt,
            defer=defer,
        )

    async def requeue(self, group: Sequence[ClaimedJob]) -> None:
        """The worker is stopping: give the attempts back if the database lets us."""
        try:
            async with self._engine.begin() as conn:
                for job in group:
                    if await jobs.requeue_attempt(conn, job.id, job.attempt):
                        log.info("job %s goes back to the queue: the worker is stopping", job.id)
        except Exception as exc:
            log.warning("could not requeue %d jobs (%s); the reconciler will", len(group), exc)

    async def _keep_alive(self, group: Sequence[ClaimedJob], done: asyncio.Event) -> None:
        """Heartbeat the claimed jobs until ``done``, also while they wait for the previous
        request or run a long step that emits no event: the reconciler requeues a running
        job whose heartbeat is older than SYNCBUS_JOB_STALE_AFTER_S."""
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
                    for job in group:
                        await jobs.heartbeat(conn, job.id, job.attempt)
            except Exception as exc:  # the next beat tries again; the job reports failures
                log.warning("heartbeat of %d jobs failed: %s", len(group), describe(exc))

    async def _execute(
        self,
        topic: str,
        handler: DomainHandler,
        group: Sequence[ClaimedJob],
        after: asyncio.Future[None] | None,
        release: asyncio.Future[None] | None,
    ) -> None:
        for job in group:
            await self._step(job, "prepare", handler.prepare(job.context()))
        try:
            async with self._engine.begin() as conn:
                raw = await conn.get_raw_connection()
                driver: PsycopgConnection[Any] | None = raw.driver_connection
                assert driver is not None
                for job in _live(group):
                    stage = handler.stage(job.context(), job.prepared, driver)
                    await self._step(job, "stage", stage, conn)
                if after is not None:
                    await asyncio.wait([after])
                for job in _live(group):
                    await self._step(job, "apply", self._apply(handler, job, conn, driver), conn)
                for job in group:
                    if job.failure is not None:
                        await self._step(job, "fail", self._record_failure(job, conn), conn)
        except BaseException:
            for job in group:
                job.emitter.discard()
            raise
        # Committed: the next request may apply while these publish. Not sooner: its diff
        # reads a snapshot, which must already hold these writes.
        _resolve(release, after)
        for job in group:
            if job.superseded:
                continue
            job.emitter.flush()
            if job.audit is not None:
                self._publish_audit(job.audit)
            if job.outcome is not None and job.failure is None:
                self._publish_changes(job)
            if job.failure is not None:
                value = job.message if job.message is not None else job.request.to_json()
                await self.dead_letter(topic, value, job.failure.message, job.request.request_id,
                                       job.id)  # fmt: skip

    async def _step(
        self,
        job: ClaimedJob,
        step: str,
        work: Coroutine[Any, Any, Any],
        conn: AsyncConnection | None = None,
    ) -> None:
        """One step of one job, in a savepoint when in the group's transaction: a failure
        is the job's own (it rolls back alone); an outage is the group's."""
        with logging_for(job):
            try:
                if conn is None:
                    job.prepared = await work
                else:
                    # SQLAlchemy's savepoint, not psycopg's: as the transaction's first
                    # statement, psycopg's would be a transaction of its own, committed.
                    async with conn.begin_nested():
                        result = await work
                    if step == "stage":
                        job.staged = result
            except DomainError as exc:
                if step == "fail":
                    raise
                job.emitter.discard()
                job.failure = Failure(str(exc), exc.details, exc.result)
            except jobs.AttemptSuperseded:
                # Requeued as stale while this attempt was slow: another attempt owns the
                # job, and this one's writes rolled back.
                job.emitter.discard()
                job.superseded = True
                job.failure = None
            except Exception as exc:
                if is_transient(exc) or step == "fail":
                    raise  # an outage is waited out, never recorded as the job's failure
                job.emitter.discard()
                log.exception("job %s (%s) failed", job.id, job.request.request_id)
                job.failure = Failure(
                    f"internal error ({type(exc).__name__}); see worker log for job {job.id}"
                )
            finally:
                if inspect.getcoroutinestate(work) == inspect.CORO_CREATED:
                    work.close()  # never started (the savepoint could not be made)

    async def _apply(
        self,
        handler: DomainHandler,
        job: ClaimedJob,
        conn: AsyncConnection,
        driver: PsycopgConnection[Any],
    ) -> None:
        outcome = await handler.apply(job.context(), job.staged, driver)
        await jobs.finish(
            conn,
            job.id,
            attempt=job.attempt,
            status="succeeded",
            counts=outcome.counts,
            result=outcome.result,
        )
        lines = [*outcome.summary, "=== Sync Complete ===", *outcome.epilogue]
        events: list[tuple[ProgressType, dict[str, Any]]] = [
            ("log", {"message": line}) for line in lines
        ]
        complete = {"status": "completed", "success": True, "error": None}
        events.append(("complete", {**complete, "counts": outcome.counts.model_dump()}))
        await job.emitter.emit_all_in(conn, events)
        audit = self._audit(job.request, job.id, True, outcome.counts.model_dump())
        await jobs.insert_audit(conn, audit)
        job.outcome, job.audit = outcome, audit

    async def _record_failure(self, job: ClaimedJob, conn: AsyncConnection) -> None:
        assert job.failure is not None
        failure = job.failure
        audit = self._audit(job.request, job.id, False, {"error": failure.message})
        await jobs.finish(
            conn,
            job.id,
            attempt=job.attempt,
            status="failed",
            counts=JobCounts(errors=1),
            result=failure.result,
            error_message=failure.message,
            error_details=failure.details,
        )
        error = {"status": "failed", "success": False, "error": failure.message}
        await job.emitter.emit_all_in(
            conn, [("log", {"message": f"Sync failed: {failure.message}"}), ("error", error)]
        )
        await jobs.insert_audit(conn, audit)
        job.audit = audit

    def _publish_changes(self, job: ClaimedJob) -> None:
        assert job.outcome is not None
        topic = self._topics.changes(job.request.domain)
        for change in job.outcome.changes:
            self._producer.send_nowait(
                topic, change.to_json(), key=change.key, headers=change.kafka_headers()
            )

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

    async def dead_letter(
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


def _live(group: Sequence[ClaimedJob]) -> list[ClaimedJob]:
    return [job for job in group if job.failure is None and not job.superseded]


def _outcome(job: ClaimedJob) -> str:
    if job.superseded:
        return "superseded"
    return "failed" if job.failure is not None else "succeeded"


def _resolve(future: asyncio.Future[None] | None, after: asyncio.Future[None] | None) -> None:
    """Resolve ``future`` now, or once ``after`` is: a request that ends early (skipped,
    dead-lettered) must not let the next one apply before the one before it committed."""
    if future is None or future.done():
        return
    if after is None or after.done():
        future.set_result(None)
    else:
        after.add_done_callback(lambda _: _resolve(future, None))
