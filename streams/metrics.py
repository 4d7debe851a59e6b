"""The worker's Prometheus metrics and the small HTTP listener that serves them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIServer

import faust
from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, start_http_server
from tenacity import RetryCallState

from schemas.settings import Settings

log = logging.getLogger(__name__)

# How often the consumer lag is read from the broker.
LAG_INTERVAL_S = 5.0
# Jobs take from milliseconds (a small push) to many minutes (a full models or git sync).
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

JOBS = Counter(
    "syncbus_jobs_processed",
    "Sync requests this worker processed, by domain and outcome: succeeded, failed, "
    "skipped (already done or running elsewhere), superseded (a newer attempt owns the job).",
    ["domain", "outcome"],
)
DURATION = Histogram(
    "syncbus_job_duration_seconds",
    "Seconds from claiming a job to its commit, by domain and outcome (succeeded, failed).",
    ["domain", "outcome"],
    buckets=DURATION_BUCKETS,
)
GROUP_SIZE = Histogram(
    "syncbus_jobs_per_transaction",
    "Jobs one transaction applied, by domain: a scope's queued pushes go together.",
    ["domain"],
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
DEAD_LETTERS = Counter(
    "syncbus_dead_letters",
    "Requests this worker sent to the dead-letter topic, by domain (unknown: unreadable).",
    ["domain"],
)
DATABASE_WAITS = Counter(
    "syncbus_database_waits",
    "Retries of a request while PostgreSQL was unavailable (each one a backoff wait; "
    "nothing is acked meanwhile).",
)
WAITING = Gauge(
    "syncbus_requests_waiting_for_database",
    "Requests waiting now for PostgreSQL to come back.",
)
LAG = Gauge(
    "syncbus_consumer_lag",
    "Messages on this worker's partitions not yet processed and committed (the partition's "
    "end offset minus the group's committed offset), by topic and partition.",
    ["topic", "partition"],
)


class DatabaseWaits:
    """tenacity's ``before_sleep`` for a request waiting out an outage: counts each wait,
    and the request as waiting until ``ended``; then calls ``then`` (the outage's note)."""

    def __init__(self, then: Callable[[RetryCallState], None]) -> None:
        self._then = then
        self._waiting = False

    def __call__(self, state: RetryCallState) -> None:
        DATABASE_WAITS.inc()
        if not self._waiting:
            self._waiting = True
            WAITING.inc()
        self._then(state)

    def ended(self) -> None:
        if self._waiting:
            self._waiting = False
            WAITING.dec()


def job_finished(domain: str, outcome: str, seconds: float | None = None) -> None:
    JOBS.labels(domain, outcome).inc()
    if seconds is not None:
        DURATION.labels(domain, outcome).observe(seconds)


def serve(settings: Settings) -> tuple[WSGIServer, threading.Thread] | None:
    """Start the /metrics listener (SYNCBUS_WORKER_METRICS_PORT, 0: none). A port that
    cannot be bound is said once; the worker runs on without metrics."""
    disable_created_metrics()  # type: ignore[no-untyped-call]
    port, host = settings.worker_metrics_port, settings.worker_metrics_host
    if port == 0:
        return None
    try:
        server, thread = start_http_server(port, addr=host)
    except OSError as exc:
        log.warning(
            "no /metrics: cannot listen on %s:%s (SYNCBUS_WORKER_METRICS_PORT, "
            "SYNCBUS_WORKER_METRICS_HOST): %s; the worker runs on without it",
            host,
            port,
            exc.strerror or exc,
        )
        return None
    log.info("metrics at http://%s:%s/metrics", host, port)
    return server, thread


def stop(listener: tuple[WSGIServer, threading.Thread] | None) -> None:
    if listener is not None:
        server, thread = listener
        server.shutdown()
        server.server_close()
        thread.join(5)


async def update_lag(app: faust.App, topics: set[str]) -> None:
    """Set the lag of every partition of ``topics`` the worker holds now (not Faust's own
    topics); forget the ones it gave up."""
    consumer: Any = app.consumer
    try:
        assigned = {tp for tp in consumer.assignment() if tp.topic in topics}
    except Exception:  # no consumer yet (starting, or rebalancing): nothing to say
        return
    if not assigned:
        LAG.clear()
        return
    ends = await consumer.highwaters(*assigned)
    # The committed offsets Faust holds: read from the group on assignment, then its own.
    committed: dict[Any, int | None] = dict(consumer._committed_offset)
    unknown = [tp for tp in assigned if committed.get(tp) is None]
    starts = await consumer.earliest_offsets(*unknown) if unknown else {}
    LAG.clear()
    for tp in assigned:
        end = ends.get(tp)
        if end is None:
            continue
        done = committed.get(tp)
        if done is None:
            done = starts.get(tp, 0)
        LAG.labels(tp.topic, str(tp.partition)).set(max(0, end - done))
