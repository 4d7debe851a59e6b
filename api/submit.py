"""Accepting a sync: job, payload and outbox row in one transaction, then a prompt publish."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Mapping
from typing import Any

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from api.problems import Problem
from api.state import ApiState
from db import jobs, outbox_rows
from db.engine import autocommit
from db.tables import TERMINAL_STATUSES
from producers.outbox import WRITER_CLAIM_S
from producers.publisher import MAX_INLINE_PAYLOAD
from schemas.events import PayloadRef, SyncRequest

log = logging.getLogger(__name__)

WAIT_POLL_S = 0.1


class RequestTooLarge(Problem):
    """A request whose Kafka message would pass the broker's message size (what it carries
    inline: a webhook's event, parameters); nothing is written."""

    def __init__(self, size: int) -> None:
        super().__init__(
            413, f"the request is {size} bytes as a Kafka message; at most {MAX_INLINE_PAYLOAD}"
        )
        self.size = size


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
    async with state.engine.begin() as conn:
        job, outbox_row = await record(
            conn,
            state,
            request,
            job_id=job_id,
            body=body,
            fingerprint=fingerprint,
            stored=False,
            exclusive=exclusive,
        )
    if outbox_row is None:
        return job, False
    publish_row_soon(state, outbox_row)
    return job, True


async def record(
    conn: AsyncConnection,
    state: ApiState,
    request: SyncRequest,
    *,
    job_id: uuid.UUID,
    body: str | None,
    fingerprint: str | None,
    stored: bool,
    exclusive: bool = False,
) -> tuple[RowMapping, dict[str, Any] | None]:
    """Inside the caller's transaction: the job, its payload (``body``, or already
    ``stored`` for ``job_id``) and its outbox row. Returns (job, outbox row with its id);
    the row is None when the request_id was known, and nothing was written."""
    if (body is not None or stored) and fingerprint is not None:
        request = request.model_copy(
            update={"payload_ref": PayloadRef(job_id=job_id, sha256=fingerprint), "payload": None}
        )
    row = outbox_rows.request_outbox_row(state.topics, request)
    if len(row["value"]) > MAX_INLINE_PAYLOAD:
        raise RequestTooLarge(len(row["value"]))
    job, created = await jobs.insert_job(
        conn, request, job_id=job_id, payload_sha256=fingerprint, body=body, exclusive=exclusive
    )
    if not created:
        return job, None
    outbox_id = await outbox_rows.add_outbox_row(conn, row, claimed_for_s=WRITER_CLAIM_S)
    return job, {"id": outbox_id, **row}


def publish_row_soon(state: ApiState, row: Mapping[str, Any]) -> None:
    """Publish an outbox row :func:`record` wrote (and claimed), once committed, now, in
    the background: from the values in hand, with no read back."""
    state.spawn(_publish(row["id"], state.relay.publish_rows([row])))


def publish_id_soon(state: ApiState, outbox_id: int) -> None:
    """Publish a committed outbox row, by id, now, in the background."""
    state.spawn(_publish(outbox_id, state.relay.publish_ids([outbox_id])))


async def _publish(outbox_id: int, publish: Awaitable[int]) -> None:
    try:
        await publish
    except Exception as exc:
        log.warning("outbox row %s left for the relay: %s", outbox_id, exc)


async def wait_until_done(state: ApiState, job_id: uuid.UUID, bound_s: float) -> RowMapping | None:
    """The job once it has ended, or None after ``bound_s`` (routes that answer with the
    final result, as seeds 000 and 001 do)."""
    deadline = time.monotonic() + bound_s
    while True:
        async with autocommit(state.engine) as conn:
            job = await jobs.get_job(conn, job_id)
        if job is not None and job["status"] in TERMINAL_STATUSES:
            return job
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(WAIT_POLL_S)
