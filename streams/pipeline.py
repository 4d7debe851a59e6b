"""One sync request end to end: record it, claim its job (with the scope's queued jobs it
applies together with), run them; never raises, and waits out database outages instead of
giving a request up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter

from db.claims import GroupLimits
from db.errors import REPEATABLE_CODES, sqlstate
from producers.kafka import AsyncProducer
from producers.quiet import Quiet
from schemas.events import SyncRequest
from schemas.log_context import job_logging
from schemas.topics import Topics
from streams import metrics
from streams.claimed import ClaimedJob, resolve_after
from streams.claimer import Claimer, Wait
from streams.domains.base import DomainHandler
from streams.job_run import JobRunner
from streams.leases import JobLeases
from streams.outage import (
    OUTAGE_MAX_WAIT_S,
    Interrupted,
    Outage,
    is_transient_or_interrupted,
)

log = logging.getLogger(__name__)

# Runs in a row that a "transient" error the same work can meet every time (a statement
# timeout, out of memory) may stop before the next run takes it as the job's failure.
MAX_REPEATS = 5

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
        self._runner = JobRunner(
            engine,
            producer,
            topics,
            progress_interval_s=progress_interval_s,
            heartbeat_interval_s=heartbeat_interval_s,
        )
        self._publish = self._runner.publish
        self._claimer = Claimer(engine, self._publish, leases, limits or GroupLimits())

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
            resolve_after(claimed, None)
            resolve_after(release, after)

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
            await self._publish.dead_letter(topic, value, reason, request_id="unknown")
            return
        handler = self._handlers.get(request.domain)
        if handler is None or topic != self._topics.requests(request.domain):
            reason = f"domain '{request.domain}' is not served on {topic}"
            await self._publish.dead_letter(topic, value, reason, request_id=request.request_id)
            return
        with job_logging(request_id=request.request_id, domain=request.domain):
            try:
                await self._run_until_done(topic, value, request, handler, after, release, claimed)
            except Exception:
                # Not an outage (those are waited out): a bug, which retrying cannot mend.
                log.exception("request %s could not be processed", request.request_id)
                await self._publish.dead_letter(
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
        repeats = 0  # runs in a row stopped by an error in db.errors.REPEATABLE_CODES
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
                            await self._runner.give_back(interrupted.attempts)
                            interrupted = None
                        last_try = repeats >= MAX_REPEATS
                        await self._run(
                            topic, value, request, handler, after, release, claimed, last_try
                        )
                    except Interrupted as exc:
                        interrupted = exc
                        repeated = sqlstate(exc.__cause__ or exc) in REPEATABLE_CODES
                        repeats = repeats + 1 if repeated else 0
                        raise
                    except asyncio.CancelledError:
                        if interrupted is not None:
                            await asyncio.shield(self._runner.requeue(interrupted.attempts))
                        raise
        finally:
            waits.ended()
        outage.ended()

    async def _run(
        self,
        topic: str,
        value: bytes,
        request: SyncRequest,
        handler: DomainHandler,
        after: asyncio.Future[None] | None,
        release: asyncio.Future[None] | None,
        claimed: asyncio.Future[None] | None,
        last_try: bool = False,
    ) -> None:
        """Claim and run the request's job, with the jobs it applies together with (or,
        first, the scope's jobs it must apply after); returns once it ended or was skipped.
        ``last_try``: an error of db.errors.REPEATABLE_CODES is the job's failure."""
        waiting = Quiet(log, f"request {request.request_id}")
        while True:
            claim = await self._claimer.claim(topic, value, request, handler)
            if isinstance(claim, Wait):
                waiting.failed(claim.reason)
                await asyncio.sleep(HOLDER_POLL_S)
                continue
            waiting.succeeded()
            if claim is None:
                return
            own = next((j for j in claim if j.request.request_id == request.request_id), None)
            if own is not None:
                resolve_after(claimed, None)  # the next message may claim the jobs after these
            for job in claim:
                job.last_try = last_try
            done = asyncio.get_running_loop().create_future()
            if own is not None:
                done.add_done_callback(_release_unless_superseded(own, release, after))
            try:
                await self._runner.run(topic, handler, claim, after, done)
            finally:
                if own is None:
                    # The request's own ``release`` is never resolved here: after an outage
                    # its jobs run again, and the next request must not apply before them
                    # (the run resolves it at commit, ``handle`` once all is over).
                    resolve_after(done, after)
                if self._leases is not None:
                    await self._leases.release(job.id for job in claim)
            if own is None:
                after = done
            elif own.superseded:
                # Its job went back to the queue meanwhile (its heartbeat was stale after an
                # outage): claim it again, and run it here, or wait for whoever runs it,
                # before the next request of the scope applies.
                waiting.failed(f"attempt {own.attempt} was superseded; claiming its job again")
            else:
                return


def _release_unless_superseded(
    own: ClaimedJob, release: asyncio.Future[None] | None, after: asyncio.Future[None] | None
) -> Callable[[asyncio.Future[None]], None]:
    """Once the run committed: let the next request apply, unless the request's own job
    was superseded (then it runs again first)."""

    def committed(_done: asyncio.Future[None]) -> None:
        if not own.superseded:
            resolve_after(release, after)

    return committed
