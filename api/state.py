"""What the api process holds while it runs, and the dependency that hands it to routes."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from api.clear_buckets import ClearBuckets
from api.live import ProgressHub
from producers.kafka import AsyncProducer
from producers.outbox import OutboxRelay
from schemas.settings import Settings
from schemas.topics import Topics


@dataclass
class ApiState:
    settings: Settings
    topics: Topics
    engine: AsyncEngine
    producer: AsyncProducer
    relay: OutboxRelay
    hub: ProgressHub
    background: set[asyncio.Task[object]] = field(default_factory=set)
    # Addresses with no failed authentication a moment ago (api/clear_buckets.py).
    clear_buckets: ClearBuckets = field(default_factory=ClearBuckets)
    # Set once the apps and releases files are in the database (api.app.seed_config_files).
    config_files_loaded: asyncio.Event = field(default_factory=asyncio.Event)

    def spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        """Run a coroutine after the response; keep a reference so it is not collected."""
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)


async def get_state(request: Request) -> ApiState:
    """The api's state. Async on purpose: FastAPI runs a plain ``def`` dependency on its
    thread pool, a thread hop on every request for an attribute read."""
    state: ApiState = request.app.state.syncbus
    return state
