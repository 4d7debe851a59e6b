"""One lock per branch across every worker: a PostgreSQL advisory lock named by the branch."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from psycopg import AsyncConnection
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# The lock's 64-bit key, from the branch name (a collision only makes two branches wait).
KEY = "hashtextextended('syncbus.git.branch:' || {}, 0)"


@contextlib.asynccontextmanager
async def branch_lock(engine: AsyncEngine, branch: str) -> AsyncIterator[None]:
    """Hold the branch's lock on a connection of its own while a worker pulls and reads
    it; waits while another worker holds it. The lock goes with its session, so a worker
    that dies mid-pull frees it."""
    async with engine.connect() as conn:
        await conn.execute(text(f"SELECT pg_advisory_lock({KEY.format(':b')})"), {"b": branch})
        await conn.commit()
        try:
            yield
        finally:
            try:
                unlock = text(f"SELECT pg_advisory_unlock({KEY.format(':b')})")
                await conn.execute(unlock, {"b": branch})
                await conn.commit()
            except BaseException:
                await conn.invalidate()  # closing the session frees the lock
                raise


async def hold_branch(conn: AsyncConnection[Any], branch: str) -> None:
    """Take the branch's lock until the caller's transaction ends: writes of the same
    branch's tests apply one after the other."""
    await conn.execute(f"SELECT pg_advisory_xact_lock({KEY.format('%s')})", (branch,))
