"""The one ``faust.App``: an agent per domain, the outbox relay and the reconciler timers."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import faust

from producers.quiet import Quiet
from schemas.settings import Settings
from schemas.topics import DOMAINS
from streams import faust_fixes, metrics
from streams.outage import guarded
from streams.pipeline import SyncPipeline
from streams.runtime import WorkerRuntime

log = logging.getLogger(__name__)

# Requests a domain's agent holds beyond the one it is writing: they are recorded, claimed
# and staged meanwhile, so staging overlaps the writes of the request before.
READ_AHEAD = 1
AgentFn = Callable[[faust.StreamT[bytes]], Coroutine[Any, Any, None]]


@dataclass
class _InFlight:
    """A request the agent holds: its run, and when the next request may apply."""

    released: asyncio.Future[None]
    claimed: asyncio.Future[None]
    task: asyncio.Task[None] | None = None


async def _process(
    stream: faust.StreamT[bytes],
    event: faust.types.EventT[bytes],
    pipeline: SyncPipeline,
    topic_name: str,
    current: _InFlight,
    previous: _InFlight | None,
) -> None:
    """One request, applied after ``previous`` released it; acked after ``previous`` is
    acked (the pipeline never raises)."""
    await pipeline.handle(
        topic_name,
        event.value,
        after=previous.released if previous is not None else None,
        release=current.released,
        claimed_before=previous.claimed if previous is not None else None,
        claimed=current.claimed,
    )
    if previous is not None and previous.task is not None:
        await asyncio.wait([previous.task])
    await stream.ack(event)


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def create_app(settings: Settings, runtime: WorkerRuntime) -> faust.App:
    """The worker app. Agents run with concurrency 1 and never let an exception escape."""
    faust_fixes.limit_fetch_wait(settings.kafka_fetch_wait_ms)
    faust_fixes.stop_despite_a_failing_fetch()
    faust_fixes.start_without_waiting_for_no_tables()
    faust_fixes.stop_a_crashed_thread_quietly()
    group = settings.worker_group_id
    app = faust.App(
        group,
        broker=broker_urls(settings.kafka_bootstrap_servers),
        store="memory://",
        datadir=str(Path(tempfile.gettempdir()) / f"syncbus-faust-{group}"),
        broker_rebalance_timeout=settings.kafka_rebalance_timeout_s,
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.kafka_session_timeout_s / 4),
        broker_request_timeout=max(15.0, settings.kafka_session_timeout_s + 5),
        broker_commit_interval=0.5,
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.topic_partitions,
        topic_allow_declare=False,
        table_standby_replicas=0,
        producer_acks=1,
        web_enabled=False,
    )

    def make_agent(topic_name: str) -> AgentFn:
        async def agent(stream: faust.StreamT[bytes]) -> None:
            # Acks are manual so the agent can read ahead: the next requests are staged
            # while the current one writes (SyncPipeline.handle ``after``). Writes and acks
            # stay in offset order, and an offset is committed only after its request's
            # transaction.
            manual: faust.StreamT[bytes] = cast("faust.Stream[bytes]", stream).noack()
            in_flight: deque[asyncio.Task[None]] = deque()
            previous: _InFlight | None = None
            try:
                async for event in manual.events():
                    resources = await runtime.get()
                    loop = asyncio.get_running_loop()
                    current = _InFlight(loop.create_future(), loop.create_future())
                    run = _process(manual, event, resources.pipeline, topic_name, current, previous)
                    current.task = asyncio.create_task(run)
                    in_flight.append(current.task)
                    previous = current
                    if len(in_flight) > READ_AHEAD:
                        await asyncio.wait([in_flight.popleft()])
                if in_flight:
                    await asyncio.wait(in_flight)
            finally:
                pending = [task for task in in_flight if not task.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending)

        return agent

    for domain in DOMAINS:
        name = runtime.topics.requests(domain)
        topic = app.topic(name, value_serializer="raw", key_serializer="raw")
        app.agent(topic, concurrency=1, name=f"sync-{domain}")(make_agent(name))

    relay_state = Quiet(log, "outbox relay pass")
    reconcile_state = Quiet(log, "reconciler pass")

    async def relay_all() -> None:
        resources = await runtime.get()
        while await resources.relay.publish_due() > 0:
            pass

    async def reconcile_once() -> None:
        resources = await runtime.get()
        ids = await resources.reconciler.run_once()
        if ids:
            await resources.relay.publish_ids(ids)

    @app.timer(interval=settings.outbox_poll_ms / 1000)
    async def relay_outbox() -> None:
        await guarded("outbox relay pass", relay_state, relay_all)

    @app.timer(interval=settings.reconcile_interval_ms / 1000, on_leader=True)
    async def reconcile() -> None:
        await guarded("reconciler pass", reconcile_state, reconcile_once)

    if settings.worker_metrics_port:
        lag_state = Quiet(log, "reading the consumer lag")
        request_topics = {runtime.topics.requests(domain) for domain in DOMAINS}

        @app.timer(interval=metrics.LAG_INTERVAL_S)
        async def consumer_lag() -> None:
            try:
                await metrics.update_lag(app, request_topics)
            except Exception as exc:  # the broker is away or rebalancing: next time
                lag_state.failed(str(exc) or type(exc).__name__)
                return
            lag_state.succeeded()

    return app
