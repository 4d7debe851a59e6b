"""Engine factory: async SQLAlchemy on psycopg 3, created on demand (no import-time engine)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from db.errors import RECONNECT_CODES, sqlstate
from schemas.settings import Settings


def create_engine(settings: Settings, *, pool_size: int = 10) -> AsyncEngine:
    """A pooled async engine for ``settings.database_url``."""
    engine = create_async_engine(
        settings.sqlalchemy_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
    )
    event.listen(engine.sync_engine, "handle_error", _reconnect_after)
    return engine


def _reconnect_after(context: ExceptionContext) -> None:
    """Errors that mean "this server cannot do it, another one can" (a standby after a
    failover) count as a lost connection: the pool is emptied, and the retry connects anew."""
    if sqlstate(context.original_exception) in RECONNECT_CODES:
        context.is_disconnect = True


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection in autocommit: each statement is its own transaction, with no
    BEGIN and ROLLBACK round trips around it (a single read, such as a status poll)."""
    async with engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")
