"""Outbox rows: what a transaction writes so that a message is published once it commits."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.tables import outbox
from schemas.events import KafkaHeaders, SyncRequest
from schemas.topics import Topics, request_key


def outbox_row(
    *, topic: str, key: str | None, value: bytes, headers: KafkaHeaders, request_id: str | None
) -> dict[str, Any]:
    """An outbox row's columns (those the relay reads: topic, request_id, key, value,
    headers)."""
    return {
        "topic": topic,
        "request_id": request_id,
        "key": key,
        "value": value,
        "headers": [[k, v.decode()] for k, v in headers],
    }


def request_outbox_row(topics: Topics, request: SyncRequest) -> dict[str, Any]:
    """The outbox row that publishes ``request`` to its domain's requests topic."""
    return outbox_row(
        topic=topics.requests(request.domain),
        key=request_key(request.domain, request.scope),
        value=request.to_json(),
        headers=request.kafka_headers(),
        request_id=request.request_id,
    )


async def add_request_outbox(conn: AsyncConnection, topics: Topics, request: SyncRequest) -> int:
    """Write the outbox row that publishes ``request``; returns its id."""
    return await add_outbox_row(conn, request_outbox_row(topics, request))


async def add_outbox_row(
    conn: AsyncConnection, row: Mapping[str, Any], *, claimed_for_s: float | None = None
) -> int:
    """Write ``row``; returns its id. ``claimed_for_s``: the writer publishes the row itself
    right after its commit, and the relay leaves it alone for that long (unless the writer
    releases it first, on failure)."""
    values = dict(row)
    if claimed_for_s is not None:
        values["claimed_until"] = func.now() + timedelta(seconds=claimed_for_s)
    stmt = insert(outbox).values(**values).returning(outbox.c.id)
    return int((await conn.execute(stmt)).scalar_one())
