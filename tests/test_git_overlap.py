"""Which earlier git job a sync waits for before it reads a release's last synced commit."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from cli.embedded import EmbeddedPostgres
from db import git as store
from db.engine import create_engine
from db.migrate import upgrade
from schemas.settings import Settings

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def add_job(
    conn: psycopg.Connection[Any], status: str, minutes: int, scope: str = "main", **params: Any
) -> uuid.UUID:
    job = uuid.uuid4()
    conn.execute(
        "INSERT INTO sync_jobs (id, request_id, domain, scope, mode, trigger, actor, params, "
        "status, created_at) VALUES (%s, %s, 'git', %s, 'incremental', 'http', 'admin', "
        "%s, %s, %s)",
        (job, f"git-{job}", scope, json.dumps(params), status, NOW + timedelta(minutes=minutes)),
    )
    return job


def test_a_sync_waits_for_an_earlier_running_sync_of_one_of_its_releases(
    postgres: EmbeddedPostgres,
) -> None:
    url = postgres.create_database(f"overlap_{uuid.uuid4().hex[:8]}")
    settings = Settings(DATABASE_URL=url)
    upgrade(settings)
    with psycopg.connect(url, autocommit=True) as conn:
        me = add_job(conn, "queued", 0, release_ids=[5, 6])
        every_release = add_job(conn, "queued", 0, scope="all")
        cases = {
            "the same release, running": add_job(conn, "running", -2, release_ids=[6]),
            "every release, running": add_job(conn, "running", -2, scope="all"),
            "the same release on another branch, running": add_job(
                conn, "running", -2, scope="other", release_ids=[5]
            ),
            "another release, running": add_job(conn, "running", -2, release_ids=[7]),
            "the same release, queued": add_job(conn, "queued", -2, release_ids=[5]),
            "the same release, done": add_job(conn, "succeeded", -2, release_ids=[5]),
            "the same release, later": add_job(conn, "running", 2, release_ids=[5]),
        }
        others = list(cases.values())

    async def answers() -> dict[str, tuple[bool, bool]]:
        engine = create_engine(settings)
        found: dict[str, tuple[bool, bool]] = {}
        try:
            for name, job in cases.items():
                # Only this case's job is in play: the others are set aside as done.
                async with engine.begin() as conn:
                    await conn.exec_driver_sql(
                        "UPDATE sync_jobs SET domain = 'parked' WHERE id = ANY(%s) AND id <> %s",
                        ([*others], job),
                    )
                    mine = await store.earlier_sync_running(conn, me)
                    everything = await store.earlier_sync_running(conn, every_release)
                    found[name] = (mine, everything)
                    await conn.rollback()
        finally:
            await engine.dispose()
        return found

    found = asyncio.run(answers())
    assert {name for name, (mine, _) in found.items() if mine} == {"the same release, running"}
    # A sync of every release waits for an earlier running one (scope "all" too).
    assert {name for name, (_, every) in found.items() if every} == {"every release, running"}
