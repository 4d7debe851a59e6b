"""Running claimed jobs to their end: one, or a scope's run of them in one transaction.

Each job of a group stays its own job: its own stage and apply (each in a savepoint), its
counts, events, audit rows and outcome. A job that fails rolls back alone and is recorded
as failed in the same transaction, while the others apply; one commit ends them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
import uuid
from collections.abc import Coroutine, Sequence
from typing import Any

from psycopg import AsyncConnection as PsycopgConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db import jobs
from db.errors import REPEATABLE_CODES, is_transient, sqlstate
from producers.kafka import AsyncProducer
from schemas.topics import Topics
from streams import metrics
from streams.claimed import ClaimedJob, Failure, live, logging_for, outcome_of, resolve_after
from streams.domains.base import DomainError, DomainHandler, JobContext
from streams.job_end import record_failure, record_failure_after_bug, record_success
from streams.job_publish import JobPublisher
from streams.job_timers import keep_alive, write_held
from streams.outage import Interrupted
from streams.progress import ProgressEmitter

log = logging.getLogger(__name__)


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
        self.publish = JobPublisher(producer, topics)

    async def run(
        self,
        topic: str,
        handler: DomainHandler,
        group: Sequence[ClaimedJob],
        after: asyncio.Future[None] | None,
        release: asyncio.Future[None] | None,
    ) -> None:
        """Run ``group`` (claimed, in apply order) to its end; ``release`` is resolved once
        its transaction committed. Raises Interrupted when an outage stopped it; a bug ends
        the jobs it stopped instead (streams.job_end.record_failure_after_bug)."""
        # A group's events are written together: one timer for all its jobs.
        defer = len(group) > 1
        for job in group:
            emitter = self._emitter(job, defer)
            job.ctx = JobContext(job_id=job.id, request=job.request, emitter=emitter)
        started = time.monotonic()
        done = asyncio.Event()
        heartbeat = asyncio.create_task(
            keep_alive(self._engine, self._heartbeat_interval_s, group, done)
        )
        held = asyncio.create_task(write_held(self._engine, group, done)) if defer else None
        try:
            if not getattr(handler, "announces_start", False):
                for job in group:
                    try:
                        await job.emitter.log(
                            f"Starting {job.request.domain} sync {job.request.request_id} "
                            f"(attempt {job.attempt})"
                        )
                    except jobs.AttemptSuperseded:
                        job.superseded = True
            await self._execute(topic, handler, group, after, release)
        except asyncio.CancelledError:
            # The worker is stopping mid-run (its transaction has rolled back). Left
            # 'running', the redelivered message would wait for a holder that is gone:
            # hand the jobs back now instead.
            await asyncio.shield(self.requeue([(job.id, job.attempt) for job in group]))
            raise
        except Exception as exc:
            if is_transient(exc):
                raise Interrupted([(job.id, job.attempt) for job in group]) from exc
            log.exception("a bug stopped the run of job(s) %s", ", ".join(str(j.id) for j in group))
            dead_letter = functools.partial(self._dead_letter, topic)
            try:
                await record_failure_after_bug(self._engine, self.publish, group, exc, dead_letter)
            except Exception as again:
                if is_transient(again):
                    raise Interrupted([(job.id, job.attempt) for job in group]) from again
                raise
            return
        finally:
            done.set()
            await heartbeat
            if held is not None:
                await held
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
            outcome = outcome_of(job)
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

    async def give_back(self, attempts: Sequence[tuple[uuid.UUID, int]]) -> list[uuid.UUID]:
        """Return running attempts to the queue; the jobs that went back (raises while the
        database is away)."""
        async with self._engine.begin() as conn:
            return [job for job, n in attempts if await jobs.requeue_attempt(conn, job, n)]

    async def requeue(self, attempts: Sequence[tuple[uuid.UUID, int]]) -> None:
        """The worker is stopping: give the attempts back if the database lets us."""
        try:
            back = await self.give_back(attempts)
        except Exception as exc:
            log.warning("could not requeue %d jobs (%s); the reconciler will", len(attempts), exc)
            return
        for job in back:
            log.info("job %s goes back to the queue: the worker is stopping", job)

    async def _execute(
        self,
        topic: str,
        handler: DomainHandler,
        group: Sequence[ClaimedJob],
        after: asyncio.Future[None] | None,
        release: asyncio.Future[None] | None,
    ) -> None:
        if after is not None and await _waits_for_previous(handler, group, after):
            await asyncio.wait([after])
        for job in live(group):
            await self._step(job, "prepare", handler.prepare(job.context()))
        # A job alone needs no savepoints (four round trips): when it fails, the whole
        # transaction rolls back and a new one records the failure.
        alone = None if len(group) > 1 else group[0]
        try:
            try:
                async with self._engine.begin() as conn:
                    raw = await conn.get_raw_connection()
                    driver: PsycopgConnection[Any] | None = raw.driver_connection
                    assert driver is not None
                    for job in live(group):
                        stage = handler.stage(job.context(), job.prepared, driver)
                        await self._step(job, "stage", stage, conn, alone is None)
                    if after is not None:
                        await asyncio.wait([after])
                    for job in live(group):
                        work = self._apply(handler, job, conn, driver)
                        await self._step(job, "apply", work, conn, alone is None)
                    if alone is not None and not live(group):
                        raise _RollBack
                    for job in group:
                        if job.failure is not None:
                            work = record_failure(self.publish, job, conn)
                            await self._step(job, "fail", work, conn, alone is None)
            except _RollBack:
                assert alone is not None
                if alone.failure is not None:
                    try:
                        async with self._engine.begin() as conn:
                            await record_failure(self.publish, alone, conn)
                    except jobs.AttemptSuperseded:
                        alone.superseded, alone.failure = True, None
        except BaseException:
            for job in group:
                job.emitter.discard()
            raise
        # Committed: the next request may apply while these publish. Not sooner: its diff
        # reads a snapshot, which must already hold these writes.
        resolve_after(release, after)
        for job in group:
            if job.superseded:
                continue
            try:
                job.emitter.flush()
                if job.audit is not None:
                    self.publish.audit(job.audit)
                if job.outcome is not None and job.failure is None:
                    self.publish.changes(job)
            except Exception:
                # Committed: a bug here must not reach record_failure_after_bug.
                log.exception("job %s: its events were not all published", job.id)
            if job.failure is not None:
                await self._dead_letter(topic, job)

    async def _dead_letter(self, topic: str, job: ClaimedJob) -> None:
        assert job.failure is not None
        value = job.message if job.message is not None else job.request.to_json()
        reason, request_id = job.failure.message, job.request.request_id
        await self.publish.dead_letter(topic, value, reason, request_id, job.id)

    async def _step(
        self,
        job: ClaimedJob,
        step: str,
        work: Coroutine[Any, Any, Any],
        conn: AsyncConnection | None = None,
        savepoint: bool = True,
    ) -> None:
        """One step of one job, in a savepoint when in a group's transaction: a failure
        is the job's own (it rolls back alone); an outage is the group's."""
        with logging_for(job):
            try:
                # SQLAlchemy's savepoint, not psycopg's: as the transaction's first
                # statement, psycopg's would be a transaction of its own, committed.
                nested = conn.begin_nested() if conn is not None and savepoint else None
                async with nested if nested is not None else contextlib.nullcontext():
                    result = await work
                if step == "prepare":
                    job.prepared = result
                elif step == "stage":
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
                code = sqlstate(exc) or ""
                given_up = REPEATABLE_CODES.get(code) if job.last_try else None
                if (is_transient(exc) and given_up is None) or step == "fail":
                    raise  # an outage is waited out, never recorded as the job's failure
                job.emitter.discard()
                log.exception("job %s (%s) failed", job.id, job.request.request_id)
                if given_up is None:
                    job.failure = Failure.internal(exc, job.id)
                else:
                    again = f"again and again (SQLSTATE {code}: {given_up}); gave up"
                    job.failure = Failure(f"PostgreSQL refused the work {again}")
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
        await record_success(self.publish, job, outcome, conn)


class _RollBack(Exception):
    """A job alone failed or was superseded: roll its transaction back."""


async def _waits_for_previous(
    handler: DomainHandler, group: Sequence[ClaimedJob], after: asyncio.Future[None]
) -> bool:
    """Whether the handler asks to prepare ``group`` only once the previous request has
    committed (``DomainHandler``: ``waits_for_previous``)."""
    asks = getattr(handler, "waits_for_previous", None)
    if asks is None or after.done():
        return False
    return any([await asks(job.context()) for job in live(group)])
