"""SSE latency: concurrent clients following live jobs, from Kafka publish to client receipt.

    python bench/sse_latency.py [--clients 100] [--entries-per-job 2000]

The worker applies one dictionary batch at a time, so one large "blocker" batch is pushed
first; while the worker is busy with it, ``--clients`` small jobs are pushed and each gets
its own SSE client (``GET /v1/syncs/{id}/events``) that connects while its job is still
queued. Every event of those jobs therefore reaches its client live, through the api's
progress relay.

Publish time is the Kafka message timestamp of the event on ``<prefix>progress``
(CreateTime, set by the worker's producer when it hands the event to Kafka), read here by
a confluent-kafka consumer and keyed by (job id, seq); the SSE frames carry ``id:`` = seq.
The same consumer also reads the envelope's ``occurred_at`` (the moment the worker created
the event, before persisting it), which gives a second figure: event creation to receipt,
which adds the PostgreSQL write (and, for the events written in the job's final
transaction, the rest of that transaction) that precedes every publish.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, KafkaError, TopicPartition
from rich.console import Console
from rich.table import Table

from producers.sender import encode_body, signed_headers

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    ADMIN_KEY,
    INTERRUPTED,
    SECRET,
    TOPIC_PREFIX,
    BenchStack,
    PushFailed,
    batch_payload,
    cpu_used,
    install_sigterm_handler,
    load_average,
    load_line,
    make_entries,
    push_body,
    service_env,
    warm_up,
)

TERMINAL = ("complete", "error", "timeout")


@dataclass
class Published:
    create_ms: int  # Kafka CreateTime (ms since the epoch)
    occurred: float  # envelope occurred_at (s since the epoch)
    type: str


class ProgressTap:
    """Reads the progress topic from its current end in a thread; records when each
    (job id, seq) was published."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.events: dict[tuple[str, int], Published] = {}
        self.not_create_time = 0
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-sse-{os.getpid()}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
                "log_level": 3,
            }
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress-tap", daemon=True)

    def start(self) -> None:
        meta = self._consumer.list_topics(self.topic, timeout=10)
        partitions = sorted(meta.topics[self.topic].partitions)
        # Concrete end offsets now, so nothing published from here on can be skipped.
        assignment = []
        for p in partitions:
            _low, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, p), timeout=10
            )
            assignment.append(TopicPartition(self.topic, p, high))
        self._consumer.assign(assignment)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._consumer.poll(0.1)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    print(f"progress tap: {error}", file=sys.stderr)
                continue
            kind, stamp = message.timestamp()
            if kind != TIMESTAMP_CREATE_TIME:
                self.not_create_time += 1
            event = orjson.loads(message.value() or b"{}")
            occurred = datetime.fromisoformat(str(event["occurred_at"])).timestamp()
            key = (str(event["job_id"]), int(event["seq"]))
            self.events[key] = Published(int(stamp), occurred, str(event["type"]))

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._consumer.close()


@dataclass
class Frame:
    seq: int
    event: str
    received: float  # time.time() when the frame's closing blank line arrived


@dataclass
class Follower:
    """One SSE client following one job."""

    job_id: str
    connected_at: float = 0.0
    frames: list[Frame] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None


async def follow(client: httpx.AsyncClient, follower: Follower) -> None:
    """Read the job's SSE stream until a terminal event; record each frame's arrival."""
    try:
        async with client.stream("GET", f"/v1/syncs/{follower.job_id}/events") as response:
            if response.status_code != 200:
                follower.error = f"HTTP {response.status_code}"
                follower.connected.set()
                return
            seq, event = 0, "message"
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    seq = int(line[3:].strip() or 0)
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line == "" and event:
                    now = time.time()
                    if event == "connected":
                        follower.connected_at = now
                        follower.connected.set()
                    else:
                        follower.frames.append(Frame(seq, event, now))
                        if event in TERMINAL:
                            return
                    seq, event = 0, ""
    except httpx.HTTPError as exc:
        follower.error = f"{type(exc).__name__}: {exc}"
    finally:
        follower.connected.set()


async def push_job(
    client: httpx.AsyncClient, push_url: str, request_id: str, entries: list[dict[str, Any]]
) -> str:
    body = encode_body(batch_payload(request_id, "en", entries))
    response = await client.post(
        push_url, content=body, headers=signed_headers(SECRET, request_id, body)
    )
    if response.status_code not in (200, 202):
        raise PushFailed(f"push {request_id}: HTTP {response.status_code}: {response.text}")
    return str(response.json()["jobId"])


async def run_clients(
    stack: BenchStack, args: argparse.Namespace, console: Console
) -> tuple[list[Follower], float]:
    """Push the jobs and connect one client to each while it is queued; wait for all."""
    run = f"{os.getpid()}-{int(time.time())}"
    words = make_entries(args.clients * args.entries_per_job, seed=args.seed)
    limits = httpx.Limits(max_connections=args.clients + 10, max_keepalive_connections=20)
    timeout = httpx.Timeout(args.timeout, connect=10)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    followers: list[Follower] = []
    tasks: list[asyncio.Task[None]] = []
    async with (
        httpx.AsyncClient(
            base_url=stack.url, headers=headers, limits=limits, timeout=timeout
        ) as sse,
        httpx.AsyncClient(timeout=60) as pusher,
    ):
        started = time.monotonic()
        for i in range(args.clients):
            part = words[i * args.entries_per_job : (i + 1) * args.entries_per_job]
            job_id = await push_job(pusher, stack.push_url, f"bench-sse-{run}-{i:04d}", part)
            follower = Follower(job_id)
            followers.append(follower)
            tasks.append(asyncio.create_task(follow(sse, follower)))
            await follower.connected.wait()
        connect_s = time.monotonic() - started
        console.print(f"{args.clients} jobs queued and their clients connected in {connect_s:.1f}s")
        _done, pending = await asyncio.wait(tasks, timeout=args.timeout)
        for task in pending:
            task.cancel()
        if pending:
            console.print(f"[yellow]{len(pending)} streams did not finish in time[/yellow]")
    return followers, connect_s


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def job_starts(stack: BenchStack, job_ids: list[str]) -> dict[str, float]:
    with stack.db() as conn:
        rows = conn.execute(
            "SELECT id::text, started_at FROM sync_jobs WHERE id::text = ANY(%s)", (job_ids,)
        ).fetchall()
    return {job: started.timestamp() for job, started in rows if started is not None}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100, help="concurrent SSE clients")
    parser.add_argument("--entries-per-job", type=int, default=2000, help="entries per job")
    parser.add_argument(
        "--blocker-entries",
        type=int,
        default=100_000,
        help="entries the worker applies first, while the clients connect",
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for streams")
    parser.add_argument("--seed", type=int, default=40, help="seed of the generated entries")
    parser.add_argument("--keep", action="store_true", help="keep logs and data afterwards")
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the api and worker (repeatable), e.g. SYNCBUS_SSE_DB_POLL_S=5",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_handler()
    console = Console()
    load_before = load_average()
    blocker = make_entries(args.blocker_entries, seed=args.seed + 1)
    try:
        with BenchStack(keep=args.keep, extra_env=service_env(args.service_env)) as stack:
            console.print(f"stack up (durable PostgreSQL, broker, api, worker) in {stack.workdir}")
            console.print(f"warm-up batch applied in {warm_up(stack):.1f}s")
            tap = ProgressTap(stack.bootstrap, f"{TOPIC_PREFIX}progress")
            try:
                tap.start()
                # Keep the worker busy while the clients connect: their jobs queue behind it.
                with httpx.Client(timeout=120) as client:
                    for n, start in enumerate(range(0, len(blocker), 50_000)):
                        request_id = f"bench-sse-blocker-{os.getpid()}-{n}"
                        payload = batch_payload(request_id, "en", blocker[start : start + 50_000])
                        push_body(client, stack.push_url, request_id, encode_body(payload))
                cpu_before, started = stack.cpu_times(), time.monotonic()
                followers, connect_s = asyncio.run(run_clients(stack, args, console))
                cpu = cpu_used(cpu_before, stack.cpu_times())
                elapsed = time.monotonic() - started
                time.sleep(0.5)  # let the tap read the last events
                starts = job_starts(stack, [f.job_id for f in followers])
            finally:
                tap.close()  # before the broker stops
    except KeyboardInterrupt:
        console.print(INTERRUPTED)
        return 130
    console.print(
        f"{load_line(load_before)}; CPU seconds over "
        f"the {elapsed:.1f}s of streaming: "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in cpu.items())
    )
    return report(console, args, tap, followers, starts, connect_s)


def _kind(frame: Frame, follower: Follower) -> str:
    """Which event of a job this is: the first ones come as the worker picks the job up,
    the last ones in one burst after the job's final commit."""
    if frame.seq == 1:
        return "1 first log (job picked up)"
    if frame.event == "progress":
        return "3 progress (during COPY)"
    if frame.event in TERMINAL or frame.seq > follower.frames[-1].seq - 4:
        return "4 final burst (after commit)"
    return "2 other log"


def report(
    console: Console,
    args: argparse.Namespace,
    tap: ProgressTap,
    followers: list[Follower],
    starts: dict[str, float],
    connect_s: float,
) -> int:
    late = [f for f in followers if f.job_id in starts and f.connected_at > starts[f.job_id]]
    errors = [f for f in followers if f.error]
    live = [f for f in followers if f not in late and not f.error]
    publish_ms: list[float] = []
    occurred_ms: list[float] = []
    by_kind: dict[str, list[float]] = {}
    unmatched = 0
    incomplete = 0
    for follower in live:
        if not follower.frames or follower.frames[-1].event not in TERMINAL:
            incomplete += 1
        for frame in follower.frames:
            published = tap.events.get((follower.job_id, frame.seq))
            if published is None:
                unmatched += 1
                continue
            latency = frame.received * 1000 - published.create_ms
            publish_ms.append(latency)
            occurred_ms.append((frame.received - published.occurred) * 1000)
            by_kind.setdefault(_kind(frame, follower), []).append(latency)

    table = Table(
        title=f"SSE latency: {args.clients} concurrent clients, one live job each "
        f"({args.entries_per_job:,} entries), {os.cpu_count()} CPUs"
    )
    table.add_column("latency (ms)")
    table.add_column("events", justify="right")
    table.add_column("p50", justify="right")
    table.add_column("p90", justify="right")
    table.add_column("p99", justify="right")
    table.add_column("max", justify="right")
    table.add_column("target p99", justify="right")
    for label, values, target in (
        ("Kafka publish (CreateTime) → client", publish_ms, 50.0),
        ("event created (occurred_at) → client", occurred_ms, None),
    ):
        p99 = percentile(values, 99)
        mark = ""
        if target is not None:
            colour = "green" if p99 <= target else "red"
            mark = f"[{colour}]≤ {target:.0f}[/{colour}]"
        table.add_row(
            label,
            f"{len(values):,}",
            f"{percentile(values, 50):.1f}",
            f"{percentile(values, 90):.1f}",
            f"{p99:.1f}",
            f"{max(values, default=float('nan')):.1f}",
            mark,
        )
    console.print(table)
    kinds = Table(title="Kafka publish → client by event (ms)")
    for column in ("event", "events", "p50", "p99", "max"):
        kinds.add_column(column, justify="left" if column == "event" else "right")
    for kind, values in sorted(by_kind.items()):
        kinds.add_row(
            kind,
            str(len(values)),
            f"{percentile(values, 50):.1f}",
            f"{percentile(values, 99):.1f}",
            f"{max(values):.1f}",
        )
    console.print(kinds)
    if publish_ms:
        console.print(
            f"mean {statistics.fmean(publish_ms):.1f} ms publish→client; "
            f"{len(live)} clients connected before their job started "
            f"({connect_s:.1f}s to queue and connect all), {len(late)} after (left out), "
            f"{len(errors)} failed, {incomplete} streams without a final event, "
            f"{unmatched} frames not seen on Kafka, "
            f"{tap.not_create_time} messages without CreateTime"
        )
    for follower in errors[:5]:
        console.print(f"[red]client for {follower.job_id}: {follower.error}[/red]")
    ok = bool(publish_ms) and not errors and not incomplete and not late
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
