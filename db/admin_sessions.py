"""The admin page's sessions in PostgreSQL: open, use (sliding idle expiry), close."""

from __future__ import annotations

from sqlalchemy import TextClause, delete, func, insert, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.admin_tables import admin_sessions


def _idle(idle_s: float) -> TextClause:
    return text("make_interval(secs => :idle_s)").bindparams(idle_s=idle_s)


async def open_session(conn: AsyncConnection, token_sha256: str, credential: str) -> None:
    await conn.execute(
        insert(admin_sessions).values(token_sha256=token_sha256, credential=credential)
    )


async def use(conn: AsyncConnection, token_sha256: str, idle_s: float) -> str | None:
    """The credential kind that opened the session ('key' or 'pin'), its idle clock
    restarted, when it exists and has not idled out; else None (an idled-out one is deleted)."""
    alive = admin_sessions.c.last_seen_at > func.now() - _idle(idle_s)
    row = (
        await conn.execute(
            update(admin_sessions)
            .where(admin_sessions.c.token_sha256 == token_sha256, alive)
            .values(last_seen_at=func.now())
            .returning(admin_sessions.c.credential)
        )
    ).first()
    if row is None:
        await close(conn, token_sha256)
        return None
    return str(row[0])


async def close(conn: AsyncConnection, token_sha256: str) -> bool:
    """Delete the session; True if there was one."""
    result = await conn.execute(
        delete(admin_sessions).where(admin_sessions.c.token_sha256 == token_sha256)
    )
    return result.rowcount > 0


async def forget_idle(conn: AsyncConnection, idle_s: float) -> int:
    """Delete every session idle for longer than ``idle_s``."""
    result = await conn.execute(
        delete(admin_sessions).where(admin_sessions.c.last_seen_at <= func.now() - _idle(idle_s))
    )
    return result.rowcount
