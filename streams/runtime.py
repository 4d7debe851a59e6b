"""The worker's resources (engine, producer, pipeline, relay, reconciler), built on first use."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from db.claims import GroupLimits
from db.engine import create_engine
from producers.kafka import AsyncProducer
from producers.outbox import OutboxRelay
from schemas.settings import Settings
from schemas.topics import Topics
from streams.domains import build_handlers
from streams.leases import JobLeases
from streams.pipeline import SyncPipeline
from streams.reconciler import Reconciler


@dataclass
class Resources:
    engine: AsyncEngine
    pipeline: SyncPipeline
    relay: OutboxRelay
    reconciler: Reconciler
    producer: AsyncProducer
    leases: JobLeases


class WorkerRuntime:
    """Lazily builds the worker's resources inside the worker's event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self._resources: Resources | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Resources:
        async with self._lock:
            if self._resources is None:
                s = self.settings
                engine = create_engine(s, pool_size=5)
                producer = AsyncProducer(s.kafka_bootstrap_servers)
                leases = JobLeases(s.libpq_url)
                self._resources = Resources(
                    engine=engine,
                    pipeline=SyncPipeline(
                        engine,
                        producer,
                        self.topics,
                        build_handlers(s, engine),
                        progress_interval_s=s.progress_interval_ms / 1000,
                        heartbeat_interval_s=s.job_stale_after_s / 3,
                        leases=leases,
                        limits=GroupLimits(s.group_max_jobs, s.group_max_entries),
                    ),
                    relay=OutboxRelay(engine, producer),
                    reconciler=Reconciler(
                        engine,
                        self.topics,
                        unclaimed_after_s=s.reconcile_after_s,
                        stale_after_s=s.job_stale_after_s,
                        payload_retention_s=s.payload_retention_h * 3600,
                    ),
                    producer=producer,
                    leases=leases,
                )
            return self._resources

    async def close(self) -> None:
        if self._resources is not None:
            await asyncio.to_thread(self._resources.producer.close)
            await self._resources.leases.close()
            await self._resources.engine.dispose()
