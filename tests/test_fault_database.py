"""PostgreSQL away or restarting: a request is waited out, never dead-lettered or lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from confluent_kafka import Producer

from cli.embedded import EmbeddedBroker, EmbeddedPostgres
from producers.publisher import SyncRequestPublisher
from tests.kafka_tools import read_topic
from tests.payloads import batch, signed
from tests.stack import SECRET, Stack
from tests.waiting import wait_for


@pytest.fixture
def db_stack(
    own_postgres: EmbeddedPostgres, broker: EmbeddedBroker, workdir: Path
) -> Iterator[Stack]:
    stack = Stack(own_postgres, broker, workdir).create()
    yield stack
    stack.stop_all()


def status(stack: Stack, request_id: str) -> str | None:
    value = stack.scalar("SELECT status FROM sync_jobs WHERE request_id = %s", (request_id,))
    return None if value is None else str(value)


def dead_letters_until(stack: Stack, sentinel_key: bytes) -> set[str]:
    """Request ids in the DLQ, read until a garbage message published last has arrived."""
    topic = f"{stack.env['SYNCBUS_TOPIC_PREFIX']}requests.dictionary"
    producer = Producer({"bootstrap.servers": stack.broker.bootstrap})
    producer.produce(topic, b"{sentinel", key=sentinel_key)
    producer.flush(10)
    letters = read_topic(
        stack.broker.bootstrap,
        f"{stack.env['SYNCBUS_TOPIC_PREFIX']}dlq",
        until=lambda vs: any(v.get("original") == "{sentinel" for v in vs),
        timeout=30,
    )
    assert any(v.get("original") == "{sentinel" for v in letters), "the sentinel never arrived"
    return {str(v["request_id"]) for v in letters}


def test_kafka_request_waits_out_a_database_outage(db_stack: Stack) -> None:
    stack = db_stack
    stack.start_worker()
    prefix = stack.env["SYNCBUS_TOPIC_PREFIX"]
    with SyncRequestPublisher(stack.broker.bootstrap, topic_prefix=prefix) as publisher:
        warm = publisher.publish("dictionary", payload=batch(["db-warm"]), scope="en")
        wait_for(lambda: status(stack, warm.request_id) == "succeeded", timeout=60, what="warm-up")

        stack.postgres.stop()
        waiting = publisher.publish("dictionary", payload=batch(["db-outage"]), scope="en")
        wait_for(
            lambda: waiting.request_id in stack.log("worker"),
            timeout=30,
            what="the worker to meet the outage",
        )
        stack.postgres.start()

    wait_for(lambda: status(stack, waiting.request_id) == "succeeded", timeout=60, what="job")
    assert (
        stack.scalar("SELECT count(*) FROM sync_jobs WHERE request_id = %s", (waiting.request_id,))
        == 1
    )
    assert stack.scalar("SELECT count(*) FROM dictionary_audit_log WHERE word = 'db-outage'") == 1
    assert waiting.request_id not in dead_letters_until(stack, b"dictionary:en")
    log = stack.log("worker")
    assert "Traceback" not in log
    assert f"request {waiting.request_id} waits for PostgreSQL" in log
    assert log.count("waits for PostgreSQL") == 1, "one line per outage, not one per retry"


def test_database_restarted_mid_sync_applies_the_batch_once(db_stack: Stack) -> None:
    stack = db_stack
    stack.start_worker()
    stack.start_api()
    words = [f"restart-{i}" for i in range(50_000)]
    payload = batch(words)
    body, headers = signed(payload, SECRET)
    answer = httpx.post(stack.push_url, content=body, headers=headers, timeout=60)
    assert answer.status_code == 202, answer.text
    request_id = str(payload["requestId"])

    def worker_writing() -> bool:
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            active = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'active' AND query ILIKE '%%dictionary%%' "
                "AND pid <> pg_backend_pid()"
            ).fetchone()
        return bool(active and active[0])

    wait_for(worker_writing, timeout=60, interval=0.01, what="the worker to stage or write")
    stack.postgres.stop()
    stack.postgres.start()

    wait_for(lambda: status(stack, request_id) == "succeeded", timeout=90, what="the job")
    row = stack.query(
        "SELECT created, updated, attempt FROM sync_jobs WHERE request_id = %s", (request_id,)
    )[0]
    assert row[:2] == (50_000, 0)
    assert row[2] >= 2, "the interrupted attempt ran again"
    job_id = stack.scalar("SELECT id FROM sync_jobs WHERE request_id = %s", (request_id,))
    assert (
        stack.scalar("SELECT count(*) FROM dictionary_audit_log WHERE job_id = %s", (job_id,))
        == 50_000
    )
    assert (
        stack.scalar("SELECT count(*) FROM dictionary_entries WHERE word LIKE 'restart-%%'")
        == 50_000
    )
    assert stack.scalar("SELECT version FROM dictionary_versions WHERE lang = 'en'") == 1
    assert (
        stack.scalar(
            "SELECT count(*) FROM sync_events WHERE job_id = %s AND type = 'complete'", (job_id,)
        )
        == 1
    )


def test_api_answers_503_while_the_database_is_away(db_stack: Stack) -> None:
    stack = db_stack
    stack.start_api()
    stack.postgres.stop()
    try:
        with stack.client() as client:
            ready = client.get("/readyz")
            listed = client.get("/v1/syncs")
            health = client.get("/healthz")
            page = client.get("/admin/jobs", cookies={"syncbus_admin": "0" * 64})
    finally:
        stack.postgres.start()
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "unreachable"
    assert listed.status_code == 503, listed.text
    assert listed.headers["content-type"] == "application/problem+json"
    assert listed.headers["retry-after"]
    assert health.status_code == 200
    # A person on the admin page reads the same answer as a page.
    assert page.status_code == 503, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "<main" in page.text and "the database is unavailable" in page.text
    assert page.headers["retry-after"]
    with stack.client() as client:
        wait_for(lambda: client.get("/v1/syncs").status_code == 200, what="the api to reconnect")
    assert "Traceback" not in stack.log("api")


def test_a_read_only_server_after_a_failover_is_waited_out(isolated_stack: Stack) -> None:
    """Writes refused with SQLSTATE 25006 (what a connection to the old primary meets after
    a failover) are waited out, and the worker reconnects once the server takes writes:
    the connections that met the refusal would refuse for ever."""
    stack = isolated_stack
    stack.start_worker()
    prefix = stack.env["SYNCBUS_TOPIC_PREFIX"]
    database = stack.scalar("SELECT current_database()")
    with SyncRequestPublisher(stack.broker.bootstrap, topic_prefix=prefix) as publisher:
        warm = publisher.publish("dictionary", payload=batch(["ro-warm"]), scope="en")
        wait_for(lambda: status(stack, warm.request_id) == "succeeded", timeout=60, what="warm-up")

        # Sessions opened from now on are read-only; the worker's open ones are ended.
        stack.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
        stack.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        waiting = publisher.publish("dictionary", payload=batch(["ro-outage"]), scope="en")
        wait_for(
            lambda: f"request {waiting.request_id} waits for PostgreSQL" in stack.log("worker"),
            timeout=30,
            what="the worker to meet the read-only server",
        )
        assert status(stack, waiting.request_id) != "succeeded"
        # The worker's read-only sessions stay read-only: only new ones take writes.
        options = "-c default_transaction_read_only=off"
        with psycopg.connect(stack.database_url, autocommit=True, options=options) as conn:
            conn.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')

    wait_for(lambda: status(stack, waiting.request_id) == "succeeded", timeout=60, what="job")
    assert stack.scalar("SELECT count(*) FROM dictionary_audit_log WHERE word = 'ro-outage'") == 1
    assert waiting.request_id not in dead_letters_until(stack, b"dictionary:en")
    log = stack.log("worker")
    assert "Traceback" not in log
    assert "25006" in log
