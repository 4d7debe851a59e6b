"""One short database session for a client command, its failure said in one line."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from cli.config import database_unreachable, database_url_problem
from db.errors import describe, is_transient
from schemas.settings import Settings

T = TypeVar("T")


class DatabaseProblem(Exception):
    """PostgreSQL cannot be used as configured; the message is one line without the URL."""


def run_in_transaction(settings: Settings, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """``work(conn)`` in one transaction, committed when it returns."""
    problem = database_url_problem(settings)
    if problem is not None:
        raise DatabaseProblem(problem)

    async def go() -> T:
        engine = create_async_engine(settings.sqlalchemy_url, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except SQLAlchemyError as exc:
        raise explain(settings, exc) from None


def explain(settings: Settings, exc: SQLAlchemyError) -> DatabaseProblem:
    """The one line to print for a database error (never the URL: it may hold a password)."""
    if is_transient(exc):
        return DatabaseProblem(database_unreachable(settings, exc))
    return DatabaseProblem(f"database error: {describe(exc)}")
