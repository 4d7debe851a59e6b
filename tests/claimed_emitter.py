"""A test job, recorded and claimed, with the ProgressEmitter the worker would give it."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from db import claims, jobs
from producers.kafka import AsyncProducer
from schemas.events import SyncRequest
from streams.progress import ProgressEmitter


async def claimed_emitter(
    engine: AsyncEngine,
    producer: AsyncProducer,
    topic: str,
    progress_interval_s: float,
    *,
    defer: bool = False,
) -> ProgressEmitter:
    """A dictionary job, queued then claimed (attempt 1), and its emitter."""
    request = SyncRequest(request_id=str(uuid.uuid4()), domain="dictionary")
    async with engine.begin() as conn:
        job, _ = await jobs.insert_job(
            conn, request, job_id=uuid.uuid4(), payload_sha256=None, body=None
        )
        (claimed,) = await claims.claim_ids(conn, [job["id"]])
    return ProgressEmitter(
        engine,
        producer,
        topic,
        job_id=uuid.UUID(str(job["id"])),
        request_id=request.request_id,
        domain="dictionary",
        first_seq=1,
        attempt=claimed["attempt"],
        progress_interval_s=progress_interval_s,
        defer=defer,
    )
