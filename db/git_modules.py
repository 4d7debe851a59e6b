"""The git domain's parsed Python files (``git_modules``), cached by path, blob sha and parser."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

MODULE_INDEX = text(
    "SELECT m.path, m.error, m.dependencies FROM git_modules m "
    "JOIN unnest(CAST(:paths AS text[]), CAST(:shas AS text[])) AS f(path, sha) "
    "ON m.path = f.path AND m.blob_sha = f.sha WHERE m.parser = :parser"
)
CACHED_SUMMARIES = text(
    "SELECT m.path, m.summary::text AS summary FROM git_modules m "
    "JOIN unnest(CAST(:paths AS text[]), CAST(:shas AS text[])) AS f(path, sha) "
    "ON m.path = f.path AND m.blob_sha = f.sha WHERE m.parser = :parser"
)


MODULE_COLUMNS = "path, blob_sha, parser, summary, error, dependencies"
COPY_MODULES = f"COPY _git_modules_in ({MODULE_COLUMNS}) FROM STDIN"
INSERT_MODULES = (
    f"INSERT INTO git_modules ({MODULE_COLUMNS}) SELECT {MODULE_COLUMNS} FROM _git_modules_in "  # noqa: S608
    "ON CONFLICT DO NOTHING"
)


def _pairs(files: Mapping[str, str], parser: str) -> dict[str, Any]:
    return {"paths": list(files), "shas": list(files.values()), "parser": parser}


async def module_index(
    conn: AsyncConnection, files: Mapping[str, str], parser: str
) -> dict[str, tuple[str | None, list[str]]]:
    """For the files (path -> blob sha) parsed before: path -> (error, dependencies)."""
    if not files:
        return {}
    rows = await conn.execute(MODULE_INDEX, _pairs(files, parser))
    return {r.path: (r.error, list(r.dependencies)) for r in rows}


async def cached_summaries(
    conn: AsyncConnection, files: Mapping[str, str], parser: str
) -> dict[str, dict[str, Any]]:
    """Stored summaries of these files (path -> blob sha), by path."""
    if not files:
        return {}
    rows = await conn.execute(CACHED_SUMMARIES, _pairs(files, parser))
    return {r.path: orjson.loads(r.summary) for r in rows}


async def store_summaries(
    conn: AsyncConnection,
    parser: str,
    rows: Sequence[tuple[str, str, bytes, str | None, Sequence[str]]],
) -> None:
    """Parsed files: (path, blob sha, summary as JSON, error, dependencies), streamed with
    COPY; a file another worker stored meanwhile is kept as it is."""
    if not rows:
        return
    raw = await conn.get_raw_connection()
    driver: psycopg.AsyncConnection[Any] = raw.driver_connection  # type: ignore[assignment]
    await driver.execute(
        "CREATE TEMP TABLE IF NOT EXISTS _git_modules_in "
        "(LIKE git_modules INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    async with driver.cursor().copy(COPY_MODULES) as copy:
        for path, sha, summary, error, dependencies in rows:
            await copy.write_row((path, sha, parser, summary.decode(), error, list(dependencies)))
    await driver.execute(INSERT_MODULES)
