"""syncbus_request_sync() (migration 0010): pg_cron's way to start a sync, from plain SQL."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import ValidationError
from sqlalchemy import select

from db import jobs, outbox_rows
from db.engine import create_engine
from db.tables import outbox
from schemas.domains import DOMAIN_RULES, schedulable
from schemas.events import SyncRequest
from schemas.topics import DOMAINS, Topics
from tests.fake_catalogues import FakeCatalogues
from tests.kafka_tools import read_topic
from tests.stack import Stack
from tests.waiting import wait_for

DOCS = Path(__file__).resolve().parent.parent / "docs" / "pg_cron.md"
# Each cron job's command in the docs, and the domain and scope it asks for.
DOC_COMMAND = re.compile(r"\$\$(SELECT syncbus_request_sync\(.*?\))\$\$")
DOC_SCHEDULE = re.compile(r"^SELECT cron\.schedule(?:_in_database)?\(.*\);$", re.MULTILINE)
# The documented refusals: | `call` | `message` |
DOC_REFUSAL = re.compile(r"^\| `(syncbus_request_sync\(.*\))` \| `(.*)` \|$", re.MULTILINE)
CALL_ARGS = re.compile(r"syncbus_request_sync\('([^']*)'(?:, '([^']*)')?")
# Domains the docs schedule ahead of their migration, saying the call is refused until then.
NOT_YET_SERVED = {"saas"}
# Kept by the job store itself, never compared between two writes of one request.
OWN_COLUMNS = {"id", "number", "created_at", "updated_at"}
# pg_cron's functions as far as the docs use them, running the command at once.
CRON_STAND_IN = """
CREATE SCHEMA cron;
CREATE FUNCTION cron.schedule(job_name text, schedule text, command text) RETURNS bigint
LANGUAGE plpgsql AS $f$ BEGIN EXECUTE command; RETURN 1; END $f$;
CREATE FUNCTION cron.schedule_in_database(
    job_name text, schedule text, command text, database text, username text DEFAULT NULL,
    active boolean DEFAULT true
) RETURNS bigint
LANGUAGE plpgsql AS $f$ BEGIN EXECUTE command; RETURN 1; END $f$;
"""


@pytest.fixture(scope="module")
def catalogues() -> Iterator[FakeCatalogues]:
    with FakeCatalogues() as fake:
        yield fake


def request_sync(
    conn: psycopg.Connection[Any], call: str = "syncbus_request_sync('models')"
) -> Any:
    """Run ``SELECT <call>`` as a cron job would and return the job id."""
    row = conn.execute(f"SELECT {call}").fetchone()
    assert row is not None
    return row[0]


def counts(stack: Stack) -> tuple[int, int]:
    return (
        int(stack.scalar("SELECT count(*) FROM sync_jobs")),
        int(stack.scalar("SELECT count(*) FROM outbox")),
    )


def test_a_sync_requested_from_sql_is_published_by_the_relay_and_run_by_the_worker(
    isolated_stack: Stack, catalogues: FakeCatalogues
) -> None:
    stack = isolated_stack
    # Only the outbox row can bring the request to the worker in time: no republish.
    stack.env_overrides.update({**catalogues.settings_env(), "SYNCBUS_RECONCILE_AFTER_S": "600"})
    prefix = stack.env["SYNCBUS_TOPIC_PREFIX"]
    with stack.db() as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET syncbus.topic_prefix = {}").format(
                sql.Identifier(conn.info.dbname), sql.Literal(prefix)
            )
        )
    stack.start_worker()
    stack.start_api()

    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        job_id = request_sync(conn)

    def finished() -> str | None:
        status = stack.scalar("SELECT status FROM sync_jobs WHERE id = %s", (job_id,))
        return status if status in ("succeeded", "failed") else None

    status = wait_for(finished, timeout=90, what="the scheduled models sync")
    with psycopg.connect(stack.database_url, row_factory=dict_row) as reader:
        job = reader.execute("SELECT * FROM sync_jobs WHERE id = %s", (job_id,)).fetchone()
    assert job is not None and status == "succeeded", job
    request_id = job["request_id"]
    # (published_at is not asked for: the relay marks it only on a job still queued, and
    # the worker may claim the job before the relay's mark. The outbox and the topic say.)
    assert request_id.startswith("sql:")
    assert {k: job[k] for k in ("domain", "scope", "mode", "trigger", "actor", "params")} == {
        "domain": "models",
        "scope": "default",
        "mode": "full",
        "trigger": "schedule",
        "actor": None,
        "params": {},
    }
    assert job["exclusive"] is True and job["payload_sha256"] is None
    assert job["created"] == stack.scalar("SELECT count(*) FROM model_catalog") > 0
    wait_for(
        lambda: stack.scalar("SELECT count(*) FROM outbox") == 0,
        timeout=10,
        what="the relay to delete the published row (after the broker's ack)",
    )
    # Seed 000's name for a scheduled run, with no actor.
    assert stack.query("SELECT action, actor FROM audit_log WHERE job_id = %s", (job_id,)) == [
        ("sync.scheduled", None)
    ]
    # What the worker consumed: the function's envelope, once, on the domain's topic.
    messages = read_topic(
        stack.broker.bootstrap,
        Topics(prefix).requests("models"),
        until=lambda vs: any(v["request_id"] == request_id for v in vs),
    )
    ours = [m for m in messages if m["request_id"] == request_id]
    assert len(ours) == 1
    assert ours[0]["_headers"] == {"request_id": request_id, "schema": "syncbus.sync_request/v1"}
    assert (ours[0]["trigger"], ours[0]["actor"], ours[0]["mode"]) == ("schedule", None, "full")


def api_rows(stack: Stack, request: SyncRequest, prefix: str) -> tuple[dict[str, Any], ...]:
    """The job and outbox rows db.jobs writes for ``request``, as the api does (rolled back)."""

    async def write() -> tuple[dict[str, Any], ...]:
        engine = create_engine(stack.settings, pool_size=1)
        try:
            async with engine.connect() as conn:
                tx = await conn.begin()
                job, created = await jobs.insert_job(
                    conn,
                    request,
                    job_id=uuid.uuid4(),
                    payload_sha256=None,
                    body=None,
                    exclusive=True,
                )
                assert created
                await outbox_rows.add_request_outbox(conn, Topics(prefix), request)
                where = outbox.c.request_id == request.request_id
                row = (await conn.execute(select(outbox).where(where))).mappings().one()
                await tx.rollback()
            return dict(job), dict(row)
        finally:
            await engine.dispose()

    return asyncio.run(write())


def test_the_job_and_outbox_row_are_the_ones_the_api_writes(isolated_stack: Stack) -> None:
    stack = isolated_stack
    params = {"source": "pg_cron", "window": {"days": 1}, "tags": ["a", "b"], "big": 2**64 - 1}
    with psycopg.connect(stack.database_url, row_factory=dict_row) as conn:
        job_id = conn.execute(
            "SELECT syncbus_request_sync('models', 'nightly', 'full', %s, 'pfx.')",
            (Jsonb(params),),
        ).fetchone()
        assert job_id is not None
        job = conn.execute(
            "SELECT * FROM sync_jobs WHERE id = %s", (job_id["syncbus_request_sync"],)
        ).fetchone()
        assert job is not None
        row = conn.execute(
            "SELECT * FROM outbox WHERE request_id = %s", (job["request_id"],)
        ).fetchone()
        assert row is not None
        conn.rollback()

    value = bytes(row["value"])
    parsed = SyncRequest.model_validate_json(value)
    assert parsed.occurred_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - parsed.occurred_at) < timedelta(minutes=1)
    assert parsed.event_id.version == 4 and parsed.request_id == job["request_id"]
    expected = SyncRequest(
        # What differs per request; everything else comes from the call alone.
        event_id=parsed.event_id,
        occurred_at=parsed.occurred_at,
        request_id=parsed.request_id,
        domain="models",
        scope="nightly",
        mode="full",
        trigger="schedule",
        actor=None,
        params=params,
    )
    for name in SyncRequest.model_fields:
        assert getattr(parsed, name) == getattr(expected, name), name
    as_json = json.loads(value)
    assert list(as_json) == list(json.loads(expected.to_json()))  # same keys, same order
    assert as_json == json.loads(expected.to_json())
    assert row["headers"] == [[k, v.decode()] for k, v in expected.kafka_headers()]

    api_job, api_outbox = api_rows(stack, expected, "pfx.")
    assert {k: v for k, v in job.items() if k not in OWN_COLUMNS} == {
        k: v for k, v in api_job.items() if k not in OWN_COLUMNS
    }
    assert (row["topic"], row["key"], row["request_id"], row["headers"]) == (
        api_outbox["topic"],
        api_outbox["key"],
        api_outbox["request_id"],
        api_outbox["headers"],
    )
    assert row["topic"] == "pfx.requests.models" and row["key"] == "models:nightly"
    assert SyncRequest.model_validate_json(value) == SyncRequest.model_validate_json(
        api_outbox["value"]
    )


def test_a_second_call_while_the_job_is_queued_returns_it_and_records_nothing(
    isolated_stack: Stack,
) -> None:
    stack = isolated_stack  # no worker: the first job stays queued
    with psycopg.connect(stack.database_url) as conn:
        first = request_sync(conn)
        assert request_sync(conn) == first  # the same transaction
        conn.commit()
    with stack.db() as conn:
        assert request_sync(conn) == first  # a later run, the job still queued
        assert counts(stack) == (1, 1)

        conn.execute("UPDATE sync_jobs SET status = 'running' WHERE id = %s", (first,))
        assert request_sync(conn) == first
        conn.execute("UPDATE sync_jobs SET status = 'succeeded' WHERE id = %s", (first,))
        second = request_sync(conn)  # the slot is free again
        assert second != first and counts(stack) == (2, 2)

        # Not exclusive: a job each time, even beside an active one.
        loose = request_sync(conn, "syncbus_request_sync('models', p_exclusive => false)")
        assert loose not in (first, second) and counts(stack) == (3, 3)

    # Two callers at once: the second waits for the first's commit, then gets its job.
    with psycopg.connect(stack.database_url) as holder, stack.db() as other:
        held = request_sync(holder, "syncbus_request_sync('models', 'race')")
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(request_sync, other, "syncbus_request_sync('models', 'race')")
            pid = other.info.backend_pid
            wait_for(
                lambda: stack.scalar(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)
                ),
                what="the second caller to wait on the first's row",
            )
            holder.commit()
            assert waiting.result(timeout=20) == held
    assert stack.scalar("SELECT count(*) FROM sync_jobs WHERE scope = 'race'") == 1
    assert counts(stack) == (4, 4)


BAD_CALLS = [
    ("syncbus_request_sync('models', 'default', 'hourly')", "unknown mode 'hourly': full or incr"),
    ("syncbus_request_sync('models', 'default', NULL)", "unknown mode 'NULL'"),
    ("syncbus_request_sync('nosuch')", "unknown domain 'nosuch': syncbus serves no requests topic"),
    ("syncbus_request_sync('dictionary', 'en', 'incremental')", "dictionary is a push domain: ea"),
    ("syncbus_request_sync('')", "domain must not be empty"),
    ("syncbus_request_sync(NULL)", "domain must not be empty"),
    ("syncbus_request_sync('models', '')", "scope must not be empty"),
    ("syncbus_request_sync('models', repeat('s', 201))", "scope must be at most 200 printable"),
    ("syncbus_request_sync('models', E'a\\tb')", "scope must be at most 200 printable"),
    ("syncbus_request_sync('models', p_params => '[]')", "params must be a JSON object, not arr"),
    ("syncbus_request_sync('models', p_params => NULL)", "params must be a JSON object, not NULL"),
    (
        """syncbus_request_sync('models', p_params => '{"n": 18446744073709551616}')""",
        "params: number 18446744073709551616 out of range",
    ),
    ("""syncbus_request_sync('models', p_params => '{"n": 1e400}')""", "out of range"),
    (
        """syncbus_request_sync('models', p_params => ('{"a": ' || repeat('[', 64) """
        """|| repeat(']', 64) || '}')::jsonb)""",
        "params: nested deeper than 64 levels",
    ),
    ("syncbus_request_sync('models', p_topic_prefix => 'a b')", "not the start of a Kafka topic"),
    ("syncbus_request_sync('models', p_exclusive => NULL)", "exclusive must be true or false"),
]


def test_bad_input_is_refused_with_its_reason_and_records_nothing(isolated_stack: Stack) -> None:
    stack = isolated_stack
    with stack.db() as conn:
        for call, reason in BAD_CALLS:
            with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
                request_sync(conn, call)
            message = refused.value.diag.message_primary or ""
            assert message.startswith("syncbus_request_sync: "), call
            assert reason in message, (call, message)
        assert counts(stack) == (0, 0)

        # The edges the worker's envelope check still takes are taken here too.
        deep: list[Any] = []
        for _ in range(62):
            deep = [deep]  # 63 arrays under the object: the deepest the worker reads
        edge = {"max": 2**64 - 1, "min": -(2**63), "x": -0.25, "tiny": 1e-300, "deep": deep}
        row = conn.execute(
            "SELECT syncbus_request_sync('models', repeat('s', 200), p_params => %s)",
            (Jsonb(edge),),
        ).fetchone()
        assert row is not None
        value = stack.scalar(
            "SELECT o.value FROM outbox o JOIN sync_jobs j USING (request_id) WHERE j.id = %s",
            (row[0],),
        )
        assert SyncRequest.model_validate_json(bytes(value)).params == edge
        # One step past each edge is what the worker refuses (it would dead-letter the job).
        for past in ({"n": 2**64}, {"n": -(2**63) - 1}, {"deep": [deep]}):
            with pytest.raises(ValidationError):
                SyncRequest(request_id="r", domain="models", params=past)


def test_the_served_domains_and_modes_are_the_ones_the_platform_knows(
    isolated_stack: Stack,
) -> None:
    stack = isolated_stack
    hint = "schedulable domains: " + ", ".join(schedulable())
    with stack.db() as conn:
        for domain in DOMAINS:
            rules = DOMAIN_RULES[domain]
            for mode in ("full", "incremental"):
                call = f"syncbus_request_sync('{domain}', 'scope-{mode}', '{mode}')"
                if rules.pull and mode in rules.modes:
                    job_id = request_sync(conn, call)
                    recorded = stack.scalar("SELECT mode FROM sync_jobs WHERE id = %s", (job_id,))
                    assert recorded == mode, call
                    continue
                with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
                    request_sync(conn, call)
                message = str(refused.value)
                if rules.pull:
                    modes = ", ".join(rules.modes)
                    assert f"{domain} has no {mode} mode (its modes: {modes})" in message
                else:
                    assert f"{domain} is a push domain: each request needs a payload" in message
                    assert refused.value.diag.message_hint == hint
    assert counts(stack)[0] == sum(len(DOMAIN_RULES[d].modes) for d in schedulable())


def called(text: str) -> tuple[str, str]:
    """The domain and scope of the syncbus_request_sync call in ``text``."""
    match = CALL_ARGS.search(text)
    assert match is not None, text
    return match.group(1), match.group(2) or "default"


def run_as_documented(conn: psycopg.Connection[Any], statement: str, domain: str) -> None:
    """Run a documented statement: it must work, or be refused for a domain not yet served."""
    if domain in schedulable():
        conn.execute(statement)
        return
    assert domain in NOT_YET_SERVED, statement
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=f"unknown domain '{domain}'"):
        conn.execute(statement)


def test_the_cron_commands_in_the_docs_run_as_written(isolated_stack: Stack) -> None:
    stack = isolated_stack
    docs = DOCS.read_text()
    commands = DOC_COMMAND.findall(docs)
    schedules = DOC_SCHEDULE.findall(docs)
    assert "SELECT syncbus_request_sync('models')" in commands
    refusals = DOC_REFUSAL.findall(docs)
    assert len(schedules) >= 3 and len(commands) >= len(schedules) and len(refusals) >= 5

    with stack.db() as conn:
        # As pg_cron runs a job's command: the text as it stands between the $$.
        for command in commands:
            domain, scope = called(command)
            run_as_documented(
                conn, f"DO $run$ BEGIN EXECUTE $cmd${command}$cmd$; END $run$", domain
            )
            if domain in schedulable():
                trigger = stack.scalar(
                    "SELECT trigger FROM sync_jobs WHERE domain = %s AND scope = %s "
                    "AND status = 'queued'",
                    (domain, scope),
                )
                assert trigger == "schedule", command
        recorded = counts(stack)

        # The whole documented lines, against a stand-in for pg_cron's functions.
        conn.execute(CRON_STAND_IN)
        for line in schedules:
            run_as_documented(conn, line, called(line)[0])
        # Each documented job was still queued from the runs above: nothing more recorded.
        assert counts(stack) == recorded

        for call, message in refusals:
            with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
                request_sync(conn, call)
            assert refused.value.diag.message_primary == f"syncbus_request_sync: {message}", call
    assert counts(stack) == recorded
