"""The metrics that live in PostgreSQL (jobs queued and running, the queue's oldest job, the
outbox backlog, open alerts), read by one query at scrape time and cached for a second."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.errors import describe
from producers.quiet import Quiet
from schemas.topics import DOMAINS

log = logging.getLogger(__name__)

# A scrape storm costs the database at most one query a second per api process.
CACHE_S = 1.0
TIMEOUT_S = 2.0
ACTIVE_STATUSES = ("queued", "running")

# Three small aggregates, each over an index: the partial index of queued and running jobs,
# the outbox (rows are deleted once published), the partial index of open alerts.
SNAPSHOT_SQL = text(
    """
    SELECT 'job' AS kind, domain AS a, status AS b, count(*) AS n,
           extract(epoch FROM now() - min(created_at)) AS age
    FROM sync_jobs WHERE status IN ('queued', 'running') GROUP BY domain, status
    UNION ALL
    SELECT 'outbox', NULL, NULL, count(*), extract(epoch FROM now() - min(created_at))
    FROM outbox
    UNION ALL
    SELECT 'alert', rule, severity, count(*), NULL
    FROM alerts WHERE status = 'open' GROUP BY rule, severity
    """
)


@dataclass
class Snapshot:
    """One reading of the database; ``up`` False when it did not answer in time."""

    up: bool
    jobs: dict[tuple[str, str], int] = field(default_factory=dict)
    oldest_queued: dict[str, float] = field(default_factory=dict)
    outbox_rows: int = 0
    outbox_oldest: float = 0.0
    alerts: dict[tuple[str, str], int] = field(default_factory=dict)


async def read_snapshot(engine: AsyncEngine) -> Snapshot:
    async with asyncio.timeout(TIMEOUT_S), engine.begin() as conn:
        await conn.execute(text("SET LOCAL statement_timeout = 1500"))
        rows = (await conn.execute(SNAPSHOT_SQL)).all()
    snapshot = Snapshot(up=True)
    for kind, a, b, n, age in rows:
        if kind == "job":
            snapshot.jobs[(a, b)] = int(n)
            if b == "queued":
                snapshot.oldest_queued[a] = float(age or 0)
        elif kind == "outbox":
            snapshot.outbox_rows, snapshot.outbox_oldest = int(n), float(age or 0)
        else:
            snapshot.alerts[(a, b)] = int(n)
    return snapshot


class DatabaseMetrics(Collector):
    """Reads a snapshot at most once a second (concurrent scrapes share it) and collects it;
    an unreachable database is ``syncbus_database_up 0``, never an error."""

    def __init__(self) -> None:
        self._snapshot = Snapshot(up=False)
        self._read_at = -CACHE_S
        self._lock = asyncio.Lock()
        self._quiet = Quiet(log, "metrics: reading PostgreSQL")

    async def refresh(self, engine: AsyncEngine) -> None:
        async with self._lock:
            if time.monotonic() - self._read_at < CACHE_S:
                return
            try:
                self._snapshot = await read_snapshot(engine)
                self._quiet.succeeded()
            except Exception as exc:
                self._snapshot = Snapshot(up=False)
                self._quiet.failed(describe(exc))
            self._read_at = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot
        yield GaugeMetricFamily(
            "syncbus_database_up",
            "1 when PostgreSQL answered the metrics query, 0 when not (the gauges read from "
            "it are then left out).",
            value=1 if snap.up else 0,
        )
        if not snap.up:
            return
        jobs = GaugeMetricFamily(
            "syncbus_jobs",
            "Jobs queued or running now, by domain and status (queue depth: status=queued).",
            labels=["domain", "status"],
        )
        domains = sorted({*DOMAINS, *(d for d, _ in snap.jobs)})
        for domain in domains:
            for status in ACTIVE_STATUSES:
                jobs.add_metric([domain, status], snap.jobs.get((domain, status), 0))
        yield jobs
        oldest = GaugeMetricFamily(
            "syncbus_queue_oldest_age_seconds",
            "Seconds the oldest queued job of a domain has waited (0: none is queued).",
            labels=["domain"],
        )
        for domain in domains:
            oldest.add_metric([domain], snap.oldest_queued.get(domain, 0.0))
        yield oldest
        yield GaugeMetricFamily(
            "syncbus_outbox_backlog",
            "Messages written to the outbox and not yet published to Kafka.",
            value=snap.outbox_rows,
        )
        yield GaugeMetricFamily(
            "syncbus_outbox_oldest_age_seconds",
            "Seconds the oldest unpublished outbox message has waited (0: none).",
            value=snap.outbox_oldest,
        )
        alerts = GaugeMetricFamily(
            "syncbus_alerts_open",
            "Alerts open now, by rule and severity.",
            labels=["rule", "severity"],
        )
        for (rule, severity), n in sorted(snap.alerts.items()):
            alerts.add_metric([rule, severity], n)
        yield alerts
