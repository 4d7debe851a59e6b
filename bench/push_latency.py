"""Push latency: one 1-entry push at a time, from POST to applied, against hand-written SQL.

    python bench/push_latency.py [--pushes 200] [--poll-ms 1]

One run, one machine, one durable PostgreSQL server for both measurements:

1. syncbus: ``--pushes`` signed seed-004 batches of one entry each go, one after another, to
   ``POST /api/internal/dictionary-upserts`` of a running api; each is timed from the start
   of its POST until the client sees ``success`` by polling ``GET .../status?requestId=``
   (the route seed 004's sender uses) every ``--poll-ms``. The job rows' timestamps
   (PostgreSQL's clock, the same machine's) split each push into: the POST, accepted ->
   published to Kafka (the outbox), published -> claimed by the worker (Kafka fetch and the
   consumer loop), claimed -> finished (the worker's transactions), finished -> seen by the
   client (commit and status poll).
2. hand-written: what an endpoint written by hand would cost, with psycopg 3 on one
   connection: per push a job row commit, then the entry's upsert + an audit row + the job's
   update in a second commit (both durable), into fresh tables shaped like the service's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Jsonb
from rich.console import Console
from rich.table import Table

from producers.sender import encode_body

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    INTERRUPTED,
    BenchStack,
    PushFailed,
    batch_payload,
    cpu_used,
    install_sigterm_handler,
    load_average,
    load_line,
    make_entries,
    push_body,
    push_status,
    service_env,
    warm_up,
)

LANG = "en"
TARGET_P50_MS = 15.0
TARGET_P99_MS = 50.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


# --- syncbus -------------------------------------------------------------------------------


@dataclass
class Push:
    request_id: str
    began: float  # wall clock (time.time) at the start of the POST
    post_s: float
    total_s: float
    polls: int


def run_syncbus(
    stack: BenchStack, entries: list[dict[str, Any]], run_id: str, poll_s: float
) -> list[Push]:
    pushes: list[Push] = []
    with httpx.Client(timeout=30) as client:
        for index, item in enumerate(entries):
            request_id = f"latency-{run_id}-{index:05d}"
            body = encode_body(batch_payload(request_id, LANG, [item]))
            began_wall, began = time.time(), time.monotonic()
            push_body(client, stack.push_url, request_id, body)
            posted = time.monotonic()
            polls = 0
            deadline = posted + 60
            while True:
                state = push_status(client, stack.push_url, request_id)
                polls += 1
                if state["status"] in ("success", "failed"):
                    break
                if time.monotonic() > deadline:
                    stack.check_alive()
                    raise PushFailed(f"{request_id} still {state['status']} after 60 s")
                if poll_s > 0:
                    time.sleep(poll_s)
            done = time.monotonic()
            if state["status"] != "success":
                raise PushFailed(f"{request_id} failed: {state.get('errorMessage')}")
            pushes.append(Push(request_id, began_wall, posted - began, done - began, polls))
    return pushes


@dataclass
class Phases:
    """Medians (ms) of each push's phases, from the job rows' timestamps."""

    post: float
    to_published: float  # POST start -> the outbox relay marked the job published
    to_claimed: float  # published -> the worker claimed the job
    working: float  # claimed -> finished (before the final commit)
    to_seen: float  # finished -> the client saw success
    events: float  # progress events per job


def phases(stack: BenchStack, pushes: list[Push]) -> Phases:
    by_id = {p.request_id: p for p in pushes}
    with stack.db() as conn:
        rows = conn.execute(
            """
            SELECT j.request_id, extract(epoch FROM j.published_at),
                   extract(epoch FROM j.started_at), extract(epoch FROM j.finished_at),
                   (SELECT count(*) FROM sync_events e WHERE e.job_id = j.id)
            FROM sync_jobs j WHERE j.request_id = ANY(%s)
            """,
            (list(by_id),),
        ).fetchall()
    post, published, claimed, working, seen, events = [], [], [], [], [], []
    for request_id, marked, started, finished, count in rows:
        push = by_id[request_id]
        post.append(push.post_s)
        # published_at is NULL when the worker claimed the job before the relay marked it.
        pub = float(marked) if marked is not None else float(started)
        published.append(pub - push.began)
        claimed.append(float(started) - pub)
        working.append(float(finished) - float(started))
        seen.append(push.began + push.total_s - float(finished))
        events.append(float(count))

    def ms(values: list[float]) -> float:
        return percentile(values, 50) * 1000

    return Phases(
        post=ms(post),
        to_published=ms(published),
        to_claimed=ms(claimed),
        working=ms(working),
        to_seen=ms(seen),
        events=percentile(events, 50),
    )


# --- hand-written reference ----------------------------------------------------------------

REF_SETUP = (
    "DROP TABLE IF EXISTS bench_ref_jobs, bench_ref_entries, bench_ref_audit",
    "CREATE TABLE bench_ref_jobs (id uuid PRIMARY KEY, request_id text UNIQUE NOT NULL, "
    "status text NOT NULL, counts jsonb, created_at timestamptz NOT NULL DEFAULT now(), "
    "finished_at timestamptz)",
    "CREATE TABLE bench_ref_entries (LIKE dictionary_entries INCLUDING ALL)",
    "CREATE TABLE bench_ref_audit (LIKE dictionary_audit_log INCLUDING ALL)",
)
REF_JOB = "INSERT INTO bench_ref_jobs (id, request_id, status) VALUES (%s, %s, 'queued')"
REF_UPSERT = """
INSERT INTO bench_ref_entries AS t (lang, word, ru, level, example)
VALUES (%(lang)s, %(word)s, %(ru)s, %(level)s, %(example)s)
ON CONFLICT (lang, word) DO UPDATE
SET ru = EXCLUDED.ru, level = EXCLUDED.level, example = EXCLUDED.example, updated_at = now()
WHERE ROW(t.ru, t.level, t.example) IS DISTINCT FROM ROW(EXCLUDED.ru, EXCLUDED.level,
                                                         EXCLUDED.example)
RETURNING t.xmax = 0
"""
REF_AUDIT = """
INSERT INTO bench_ref_audit (lang, word, action, actor_username, job_id, meta)
VALUES (%(lang)s, %(word)s, %(action)s, 'bench', %(job)s, %(meta)s)
"""
REF_FINISH = "UPDATE bench_ref_jobs SET status = 'succeeded', counts = %s, finished_at = now() "
REF_FINISH += "WHERE id = %s"


def run_reference(database_url: str, entries: list[dict[str, Any]], run_id: str) -> list[float]:
    """Per push: a job row commit, then upsert + audit row + job update in a second commit."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for statement in REF_SETUP:
            conn.execute(statement)
    times: list[float] = []
    with psycopg.connect(database_url) as conn:
        for index, item in enumerate(entries):
            began = time.monotonic()
            job = uuid.uuid4()
            conn.execute(REF_JOB, (job, f"ref-{run_id}-{index:05d}"))
            conn.commit()
            params = {"lang": LANG, "word": item[LANG], "ru": item["ru"], "level": item["level"]}
            params["example"] = item["example"]
            row = conn.execute(REF_UPSERT, params).fetchone()
            action = "created" if row and row[0] else "updated"
            if row is not None:
                audit = {**params, "action": action, "job": job, "meta": Jsonb({"n": index})}
                conn.execute(REF_AUDIT, audit)
            conn.execute(REF_FINISH, (Jsonb({action: 1}), job))
            conn.commit()
            times.append(time.monotonic() - began)
    return times


# --- the run -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=200, help="sequential 1-entry pushes")
    parser.add_argument(
        "--poll-ms", type=float, default=1.0, help="pause between status polls (0: none)"
    )
    parser.add_argument("--keep", action="store_true", help="keep logs and data afterwards")
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the api and worker (repeatable), "
        "e.g. SYNCBUS_OUTBOX_POLL_MS=30000",
    )
    args = parser.parse_args(argv)
    if args.pushes < 1 or args.poll_ms < 0:
        parser.error("--pushes must be positive and --poll-ms not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_handler()
    console = Console()
    console.print("$ python " + " ".join(["bench/push_latency.py", *sys.argv[1:]]))
    run_id = f"{os.getpid()}-{int(time.time())}"
    load_before = load_average()
    entries = make_entries(args.pushes, lang=LANG)
    try:
        with BenchStack(keep=args.keep, extra_env=service_env(args.service_env)) as stack:
            console.print(f"stack up (durable PostgreSQL, broker, api, worker) in {stack.workdir}")
            console.print(f"warm-up batch applied in {warm_up(stack):.1f}s")
            # A few pushes more, so the first measured ones find warm pools and caches.
            run_syncbus(stack, make_entries(5, lang=LANG, seed=99), f"{run_id}-warm", 0.001)
            stack.checkpoint()
            cpu_before = stack.cpu_times()
            started = time.monotonic()
            pushes = run_syncbus(stack, entries, run_id, args.poll_ms / 1000)
            wall = time.monotonic() - started
            cpu = cpu_used(cpu_before, stack.cpu_times())
            split = phases(stack, pushes)
            stack.checkpoint()
            reference = run_reference(stack.database_url, entries, run_id)
    except KeyboardInterrupt:
        console.print(INTERRUPTED)
        return 130
    console.print(load_line(load_before))
    return report(console, args, pushes, reference, split, cpu, wall)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def report(
    console: Console,
    args: argparse.Namespace,
    pushes: list[Push],
    reference: list[float],
    split: Phases,
    cpu: dict[str, float],
    wall: float,
) -> int:
    total = [p.total_s for p in pushes]
    table = Table(
        title=f"Push latency: {len(pushes)} sequential 1-entry pushes, status polled every "
        f"{args.poll_ms:g} ms, {os.cpu_count()} CPUs, durable PostgreSQL"
    )
    table.add_column("measurement")
    for q in ("p50", "p90", "p99", "max"):
        table.add_column(f"{q} ms", justify="right")
    table.add_column("syncbus ÷ this (p50)", justify="right")

    def row(label: str, values: list[float], ratio: str = "") -> None:
        quantiles = [percentile(values, q) for q in (50, 90, 99)]
        table.add_row(label, *(_ms(v) for v in quantiles), _ms(max(values)), ratio)

    row("syncbus: POST to applied (success seen)", total)
    row("syncbus: the POST alone", [p.post_s for p in pushes])
    ratio = percentile(total, 50) / percentile(reference, 50)
    row("hand-written: job commit, then upsert + audit + job update", reference, f"{ratio:.1f}x")
    console.print(table)

    where = Table(title="Where a push's time goes (medians, ms; the job rows' timestamps)")
    for name in ("POST", "-> published", "-> claimed", "worker", "-> seen", "events/job"):
        where.add_column(name, justify="right")
    where.add_row(
        f"{split.post:.1f}",
        f"{split.to_published:.1f}",
        f"{split.to_claimed:.1f}",
        f"{split.working:.1f}",
        f"{split.to_seen:.1f}",
        f"{split.events:.0f}",
    )
    console.print(where)
    polls = percentile([float(p.polls) for p in pushes], 50)
    console.print(
        f"status polls per push (median): {polls:.0f}; CPU s over {wall:.1f}s of wall: "
        f"worker {cpu.get('worker', 0):.1f}, api {cpu.get('api', 0):.1f}, "
        f"PostgreSQL {cpu.get('postgres', 0):.1f}, broker {cpu.get('broker', 0):.1f}, "
        f"client {cpu.get('client', 0):.1f}"
    )
    p50, p99 = percentile(total, 50) * 1000, percentile(total, 99) * 1000
    ok = p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS
    colour = "green" if ok else "red"
    console.print(
        f"[{colour}]targets p50 <= {TARGET_P50_MS:.0f} ms, p99 <= {TARGET_P99_MS:.0f} ms: "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms[/{colour}]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
