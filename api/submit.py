"""Accepting a sync: job, payload and outbox row in one transaction, then a prompt publish."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.engine import RowMapping

from api.state import ApiState
from db import jobs
from schemas.events import PayloadRef, SyncRequest
from schemas.topics import request_key

log = logging.getLogger(__name__)


async def submit(
    state: ApiState,
    request: SyncRequest,
    *,
    body: str | None,
    fingerprint: str | None,
    exclusive: bool = False,
) -> tuple[RowMapping, bool]:
    """Record ``request`` (idempotent by request_id); returns (job, created).

    The answer never waits for the broker: the outbox row is published in the background,
    and the relay or reconciler publishes it later if the broker is away.
    """
    job_id = uuid.uuid4()
    if body is not None and fingerprint is not None:
        request = request.model_copy(
            update={"payload_ref": PayloadRef(job_id=job_id, sha256=fingerprint), "payload": None}
        )
    async with state.engine.begin() as conn:
        job, created = await jobs.insert_job(
            conn, request, job_id=job_id, payload_sha256=fingerprint, body=body, exclusive=exclusive
        )
        if not created:
            return job, False
        outbox_id = await jobs.add_outbox(
            conn,
            topic=state.topics.requests(request.domain),
            key=request_key(request.domain, request.scope),
            value=request.to_json(),
            headers=request.kafka_headers(),
            request_id=request.request_id,
        )
    state.spawn(_publish(state, outbox_id))
    return job, True


async def _publish(state: ApiState, outbox_id: int) -> None:
    try:
        await state.relay.publish_ids([outbox_id])
    except Exception as exc:
        log.warning("outbox row %s left for the relay: %s", outbox_id, exc)
