"""Where ``syncbus dev``'s embedded broker keeps its topics (SYNCBUS_DEV_BROKER_STORAGE), and
what a restart on the same data directory keeps: only what PostgreSQL holds (the pinned Tansu
build has no PostgreSQL storage), and never a job applied twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from cli.devenv import read_dev_env
from cli.embedded import BrokerStorageUnsupported, EmbeddedBroker, EmbeddedPostgres
from cli.processes import free_port
from tests.cli_run import Dev, clean_env, start_dev, syncbus
from tests.waiting import wait_for

BATCH = Path(__file__).resolve().parent.parent / "examples" / "dictionary-batch.json"
REQUESTS = "syncbus.requests.dictionary"
WORKER_GROUP = "syncbus.worker"  # dev's default: <SYNCBUS_TOPIC_PREFIX>worker
FORGOTTEN = "memory (forgotten when dev stops)"


@pytest.fixture(scope="module")
def postgres_storage_problem(
    postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> str | None:
    """Why this broker build cannot keep its topics in PostgreSQL, or None when it can."""
    storage = "postgres://" + postgres.create_database("tansu_probe").partition("://")[2]
    log = tmp_path_factory.mktemp("probe") / "broker.log"
    broker = EmbeddedBroker(free_port(), log_path=log, storage=storage)
    try:
        broker.start()
    except BrokerStorageUnsupported as exc:
        return str(exc)
    broker.stop()
    return None


@dataclass(frozen=True)
class Offsets:
    """The dictionary request topic's end offsets and the worker group's commits, by partition."""

    ends: dict[int, int]
    committed: dict[int, int]


def request_offsets(bootstrap: str) -> Offsets:
    # Reads the group's commits without joining it (no subscribe), so the worker is undisturbed.
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": WORKER_GROUP, "enable.auto.commit": False}
    )
    try:
        topic = consumer.list_topics(REQUESTS, timeout=10).topics[REQUESTS]
        partitions = [TopicPartition(REQUESTS, p) for p in sorted(topic.partitions)]
        ends = {
            tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions
        }
        committed = consumer.committed(partitions, timeout=10)
        return Offsets(ends, {tp.partition: tp.offset for tp in committed if tp.offset >= 0})
    finally:
        consumer.close()


@dataclass(frozen=True)
class Applied:
    """What applying the example batch left in PostgreSQL: running it again would change
    its job row (attempt, times) or add audit rows, and bump the dictionary's version."""

    job: list[tuple[Any, ...]]
    audit_rows: int
    jobs: int
    version: int


def applied(dev: Dev) -> Applied:
    url = read_dev_env(dev.data_dir / "dev.env")["DATABASE_URL"]
    with psycopg.connect(url) as conn:
        job = conn.execute(
            "SELECT id, status, attempt, started_at, finished_at FROM sync_jobs"
            " WHERE request_id = 'example-batch-0001'"
        ).fetchall()
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM dictionary_audit_log WHERE job_id = %s),"
            " (SELECT count(*) FROM sync_jobs WHERE domain = 'dictionary'),"
            " (SELECT version FROM dictionary_versions WHERE lang = 'en')",
            (job[0][0] if job else None,),
        ).fetchone()
    assert counts is not None
    return Applied(job, *counts)


def send(dev: Dev, path: Path) -> dict[str, Any]:
    sent = syncbus("send", "--file", str(path), "--wait", cwd=dev.cwd, env=clean_env())
    assert sent.returncode == 0, sent.stdout + sent.stderr
    answer: dict[str, Any] = json.loads(sent.stdout)
    assert answer["status"] == "success", answer
    return answer


def another_batch(tmp_path: Path) -> Path:
    """A second batch (another request id and word): its job proves the worker consumes."""
    batch = json.loads(BATCH.read_text(encoding="utf-8"))
    batch["requestId"] = "example-batch-0002"
    batch["entries"][0]["en"] = "goodbye"
    path = tmp_path / "second-batch.json"
    path.write_text(json.dumps(batch), encoding="utf-8")
    return path


@pytest.fixture
def running() -> Iterator[list[Dev]]:
    """Every dev a test starts, stopped at its end whatever happened."""
    devs: list[Dev] = []
    yield devs
    for dev in devs:
        dev.stop()


def push_then_restart(
    tmp_path: Path, storage: str, running: list[Dev]
) -> tuple[Offsets, Applied, Dev]:
    """Start dev, push the example batch, stop dev cleanly; start it again on the same data
    directory. Returns the offsets and what was applied before the stop, and the second dev
    (ready)."""
    env = clean_env(SYNCBUS_DEV_BROKER_STORAGE=storage)
    first = start_dev(tmp_path, env)
    running.append(first)
    first.wait_ready()
    send(first, BATCH)
    bootstrap = f"127.0.0.1:{first.kafka_port}"

    def settled() -> Offsets | None:  # the worker commits after its database commit
        offsets = request_offsets(bootstrap)
        written = {partition: end for partition, end in offsets.ends.items() if end}
        return offsets if written and offsets.committed == written else None

    before = wait_for(settled, timeout=30, what="the worker group to commit the request")
    first_applied = applied(first)
    assert first_applied.job[0][1] == "succeeded", first_applied
    children = psutil.Process(first.proc.pid).children(recursive=True)
    assert first.stop() == 0
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], f"left behind: {[p.cmdline() for p in alive]}"

    second = start_dev(tmp_path, env)
    running.append(second)
    second.wait_ready()
    return before, first_applied, second


def push_more_and_again(tmp_path: Path, dev: Dev, first_applied: Applied) -> None:
    """Another batch (so the worker has consumed since the restart), then the example batch
    again: its request id answers from its job, and nothing of it is applied twice."""
    send(dev, another_batch(tmp_path))
    again = send(dev, BATCH)
    assert again["requestId"] == "example-batch-0001"
    now = applied(dev)
    assert now.job == first_applied.job
    assert now.audit_rows == first_applied.audit_rows
    assert (now.jobs, now.version) == (first_applied.jobs + 1, first_applied.version + 1)


def test_memory_storage_forgets_the_topics_but_applies_nothing_twice(
    tmp_path: Path, running: list[Dev]
) -> None:
    before, first_applied, second = push_then_restart(tmp_path, "memory", running)
    assert f"Kafka topics in │ {FORGOTTEN} │" in " ".join(second.output.split())
    assert "FeatureNotEnabled" not in (tmp_path / ".syncbus" / "broker.log").read_text()
    after = request_offsets(f"127.0.0.1:{second.kafka_port}")
    assert after.ends == dict.fromkeys(before.ends, 0)  # the topic was recreated empty...
    assert set(after.committed.values()) <= {0}  # ...and the worker's commits are gone
    push_more_and_again(tmp_path, second, first_applied)
    assert second.stop() == 0


def test_postgres_storage_without_the_feature_runs_in_memory_and_says_why(
    tmp_path: Path, running: list[Dev], postgres_storage_problem: str | None
) -> None:
    assert postgres_storage_problem is not None, (
        "this broker build keeps its topics in PostgreSQL now: make postgres the default of "
        "SYNCBUS_DEV_BROKER_STORAGE and test that a restart keeps messages and offsets"
    )
    assert 'FeatureNotEnabled { feature: "postgres"' in postgres_storage_problem
    dev = start_dev(tmp_path, clean_env(SYNCBUS_DEV_BROKER_STORAGE="postgres"))
    running.append(dev)
    dev.wait_ready()
    said = " ".join(dev.output.split())
    assert "this broker build has no postgres storage (FeatureNotEnabled, see" in said
    assert "--storage-engine memory://tansu/" in " ".join(dev.child("tansu").cmdline())
    log = (tmp_path / ".syncbus" / "broker.log").read_text()
    assert 'Error: Server(Storage(FeatureNotEnabled { feature: "postgres"' in log
    assert dev.stop() == 0
