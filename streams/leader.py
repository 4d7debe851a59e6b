"""Leadership among workers: a PostgreSQL advisory lock held on a connection of its own.

Whichever worker holds the lock fires schedules and evaluates alerts. It works the same with
real Kafka and the embedded broker, and a leader that dies outright loses the lock as soon
as PostgreSQL sees its connection close; another worker takes over within
``SYNCBUS_LEADER_POLL_S``. A moment of two leaders does no harm: firing locks the due rows
and derives each job's request id from the schedule and its planned time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import make_conninfo

from producers.quiet import Quiet
from schemas.settings import Settings
from streams.outage import guarded

log = logging.getLogger(__name__)

# pg_try_advisory_lock(int, int): a fixed first key, the second from the topic prefix, so two
# deployments sharing one database elect a leader each.
LOCK_CLASS = 0x53594E43  # "SYNC"
# Detect a dead peer in seconds rather than the kernel's two hours (a leader on a host that
# vanished from the network).
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}


@dataclass(frozen=True)
class Duty:
    """Something the leader does every ``every_s`` seconds."""

    name: str
    every_s: float
    run: Callable[[], Awaitable[object]]


class Leader:
    """Tries to lead until ``stop``; while leading, runs its duties."""

    def __init__(
        self,
        settings: Settings,
        duties: list[Duty],
        on_lead: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._settings = settings
        self._duties = duties
        self._on_lead = on_lead
        self._lock_key = zlib.crc32(settings.topic_prefix.encode()) & 0x7FFFFFFF
        self._quiet = Quiet(log, "leader election")
        self._quiets: dict[str, Quiet] = {}
        self.leading = False

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._try_to_lead(stop)
                self._quiet.succeeded()
            except (psycopg.Error, OSError) as exc:
                self._quiet.failed(f"{type(exc).__name__}: {str(exc).strip()[:200]}")
            if self.leading:
                self.leading = False
                log.warning("this worker no longer leads")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._settings.leader_poll_s)

    async def _try_to_lead(self, stop: asyncio.Event) -> None:
        async with await psycopg.AsyncConnection.connect(
            make_conninfo(self._settings.libpq_url, connect_timeout=5, **KEEPALIVE),
            autocommit=True,
        ) as conn:
            cur = await conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, self._lock_key)
            )
            row = await cur.fetchone()
            if not row or not row[0]:
                return
            self.leading = True
            log.info("this worker leads: it fires schedules and evaluates alerts")
            if self._on_lead is not None:
                await self._on_lead()
            await self._lead(conn, stop)

    async def _lead(self, conn: psycopg.AsyncConnection[object], stop: asyncio.Event) -> None:
        """Run the duties on their intervals until ``stop`` or the lock's connection fails."""
        due = dict.fromkeys((d.name for d in self._duties), 0.0)
        tasks: dict[str, asyncio.Task[object]] = {}
        try:
            while not stop.is_set():
                await conn.execute("SELECT 1")  # raises once the lock is gone with its session
                now = time.monotonic()
                for duty in self._duties:
                    running = tasks.get(duty.name)
                    if now >= due[duty.name] and (running is None or running.done()):
                        due[duty.name] = now + duty.every_s
                        tasks[duty.name] = asyncio.create_task(self._perform(duty))
                wait = max(0.05, min(due.values()) - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), min(wait, 1.0))
        finally:
            for task in tasks.values():
                task.cancel()
            if tasks:
                await asyncio.wait(list(tasks.values()))

    async def _perform(self, duty: Duty) -> object:
        """One run of a duty; a failure never ends leadership."""
        quiet = self._quiets.setdefault(duty.name, Quiet(log, f"leader duty {duty.name}"))
        return await guarded(f"leader duty {duty.name}", quiet, duty.run)
