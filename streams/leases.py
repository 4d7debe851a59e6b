"""Which worker is alive on a running job: a session advisory lock per job it runs.

A worker locks a job (``pg_try_advisory_lock`` keyed by the job id, on one connection of
its own) before claiming it and unlocks it when the job ends. A worker killed outright
loses every lock the moment PostgreSQL sees its connection close, so when its request is
redelivered to another worker, a ``running`` job whose lock is free has no live holder
and is taken over at once (attempt + 1), in its place in the topic's order, instead of
waiting for the reconciler's stale timeout behind the requests that follow it. A lock
held elsewhere means a live holder: the redelivered request waits for it to end.

The lock only tells who is alive; correctness does not rest on it: every write of an
attempt checks the attempt still owns its job (``jobs.finish``), so a lock lost with its
connection can at worst let a job run twice with one of the two rolled back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from streams.leader import KEEPALIVE

log = logging.getLogger(__name__)

TRY_LOCK = "SELECT k, pg_try_advisory_lock(k) FROM unnest(%s::bigint[]) AS k"
UNLOCK = "SELECT pg_advisory_unlock(k) FROM unnest(%s::bigint[]) AS k"


def lock_key(job_id: uuid.UUID) -> int:
    """The job's advisory lock key: the first 8 bytes of its id, as a signed bigint."""
    return int.from_bytes(job_id.bytes[:8], "big", signed=True)


class JobLeases:
    """The advisory locks of the jobs this worker runs, on one autocommit connection."""

    def __init__(self, libpq_url: str) -> None:
        self._url = libpq_url
        self._conn: psycopg.AsyncConnection[tuple[Any, ...]] | None = None
        self._use = asyncio.Lock()
        self.local: set[uuid.UUID] = set()  # jobs this process runs (locked or not)
        self._locked: set[uuid.UUID] = set()  # of those, the ones locked in the database

    async def take(self, job_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Lock the jobs nobody runs; returns those locked. A job this process runs
        already is never returned (a session's advisory locks are re-entrant, so the
        database alone would say it is free). Raises while PostgreSQL is away."""
        wanted = {lock_key(job): job for job in job_ids if job not in self.local}
        if not wanted:
            return set()
        async with self._use:
            conn = await self._connection()
            try:
                cur = await conn.execute(TRY_LOCK, (list(wanted),))
                rows = await cur.fetchall()
            except psycopg.Error:
                await self._drop()
                raise
        taken = {wanted[key] for key, locked in rows if locked}
        self.local |= taken
        self._locked |= taken
        return taken

    def adopt(self, job_ids: Iterable[uuid.UUID]) -> None:
        """This process runs these jobs without their locks (see ``take``'s caller)."""
        self.local.update(job_ids)

    async def release(self, job_ids: Iterable[uuid.UUID]) -> None:
        """The jobs ended here (or were not claimed after all): unlock them. Never raises:
        a lock that cannot be released goes with its connection."""
        ended = set(job_ids)
        self.local -= ended
        ids = [job for job in ended if job in self._locked]
        if not ids:
            return
        self._locked.difference_update(ids)
        async with self._use:
            if self._conn is None:
                return
            try:
                await self._conn.execute(UNLOCK, ([lock_key(job) for job in ids],))
            except psycopg.Error as exc:
                log.warning("could not release job locks (%s); reconnecting", exc)
                await self._drop()

    async def close(self) -> None:
        async with self._use:
            await self._drop()

    async def _connection(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed:
            self._locked.clear()
            # A new session holds none of the old one's locks: a job still running here is
            # unlocked until it ends, and another worker may take it over (then this
            # attempt's writes roll back at its finish).
            self._conn = await psycopg.AsyncConnection.connect(
                make_conninfo(self._url, connect_timeout=5, **KEEPALIVE), autocommit=True
            )
        return self._conn

    async def _drop(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(psycopg.Error):
                await conn.close()
