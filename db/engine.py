"""Engine factory: async SQLAlchemy on psycopg 3, created on demand (no import-time engine)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from schemas.settings import Settings


def create_engine(settings: Settings, *, pool_size: int = 10) -> AsyncEngine:
    """A pooled async engine for ``settings.database_url``."""
    return create_async_engine(
        settings.sqlalchemy_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
    )
