"""Dictionary push throughput: syncbus end to end against the raw PostgreSQL limit and dlt.

    python bench/dictionary_push.py [--entries 200000] [--batch-size 25000] [--changed 0.1]

One run, one machine, one durable PostgreSQL server for all three measurements:

1. syncbus: the entries go as signed seed-004 batches to ``POST
   /api/internal/dictionary-upserts`` of a running api (``--senders`` threads, each
   pushing a batch, following the job's SSE stream (``GET /v1/syncs/{jobId}/events``) until
   it ends and then reading ``GET .../status?requestId=`` once, so that many batches are in
   flight; ``--poll S`` polls the status route instead). The worker stages one batch
   while it writes the previous one. Entries/s is counted from the first push to the
   last batch's ``success``.
2. raw: the same rows with psycopg 3, one ``COPY`` into a staging table and one
   ``INSERT ... ON CONFLICT DO UPDATE ... WHERE ROW(...) IS DISTINCT FROM ROW(...)`` into an
   identically shaped fresh table: what PostgreSQL itself can do, without HTTP, Kafka,
   validation, audit rows or progress events.
3. dlt: ``write_disposition="merge"`` (primary key lang+word) of the same rows into the
   same server, dlt's defaults otherwise.

Then the same rows are pushed again with ``--changed`` of them changed; the job counts
must say exactly that many ``updated`` and the rest ``unchanged``. The raw upsert runs the
same second pass for comparison.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import psycopg
from psycopg import sql
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from producers.sender import encode_body
from schemas.dictionary import ENTRY_FIELDS
from streams.domains.dictionary import TARGET

sys.path.insert(0, str(Path(__file__).resolve().parent))

import raw_loop
from harness import (
    CPU_PARTS,
    INTERRUPTED,
    BenchStack,
    PushFailed,
    batch_payload,
    chunks,
    cpu_used,
    install_sigterm_handler,
    load_average,
    load_line,
    make_entries,
    push_body,
    push_status,
    service_env,
    wait_events_end,
    wait_terminal,
    warm_up,
)

LANG = "en"
# dictionary_entries' columns in the order the worker writes them (db.merge target order).
KEYS = TARGET.keys
CONTENT = TARGET.columns
COLUMNS = (*KEYS, *CONTENT)
RAW_TABLE = "bench_raw_entries"
DLT_DATASET = "bench_dlt"

Row = tuple[object, ...]


# --- syncbus -------------------------------------------------------------------------------


@dataclass
class Batch:
    request_id: str
    size: int
    body: bytes


@dataclass
class BatchResult:
    batch: Batch
    state: dict[str, Any]
    pushed_s: float  # seconds the POST took (the api's accept path)
    done_at: float  # monotonic time the client saw the final status


@dataclass
class PushRun:
    label: str
    entries: int
    seconds: float
    results: list[BatchResult] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by process

    @property
    def rate(self) -> float:
        return self.entries / self.seconds

    def total(self, key: str) -> int:
        return sum(int(r.state[key]) for r in self.results)


def encode_batches(
    entries: list[dict[str, Any]], batch_size: int, run_id: str, label: str
) -> list[Batch]:
    batches = []
    for index, part in enumerate(chunks(entries, batch_size)):
        request_id = f"bench-{run_id}-{label}-{index:05d}"
        body = encode_body(batch_payload(request_id, LANG, part))
        batches.append(Batch(request_id, len(part), body))
    return batches


def run_push(
    stack: BenchStack,
    batches: list[Batch],
    senders: int,
    label: str,
    console: Console,
    poll_s: float = 0.0,
) -> PushRun:
    """Push every batch through the running service and wait until each one is final."""
    total = sum(b.size for b in batches)
    stop = threading.Event()
    local = threading.local()
    # Made before the clock starts, as a sender's would be: each builds an SSL context,
    # about 20 ms of CPU, which would otherwise land on the first batches.
    ready = [(httpx.Client(timeout=300), stack.admin_client()) for _ in range(senders)]
    made = list(ready)

    def clients() -> tuple[httpx.Client, httpx.Client]:
        if not hasattr(local, "clients"):
            local.clients = ready.pop()
        pair: tuple[httpx.Client, httpx.Client] = local.clients
        return pair

    def client() -> httpx.Client:
        return clients()[0]

    def events_client() -> httpx.Client:
        return clients()[1]

    def send(batch: Batch) -> BatchResult:
        if stop.is_set():
            raise PushFailed("stopped")
        began = time.monotonic()
        accepted = push_body(client(), stack.push_url, batch.request_id, batch.body)
        pushed = time.monotonic() - began
        if poll_s > 0:
            state = wait_terminal(
                client(), stack.push_url, batch.request_id, poll_s=poll_s, check=stack.check_alive
            )
        else:
            wait_events_end(events_client(), str(accepted["jobId"]))
            state = push_status(client(), stack.push_url, batch.request_id)
        return BatchResult(batch, state, pushed, time.monotonic())

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("entries  {task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    )
    pool = ThreadPoolExecutor(max_workers=senders, thread_name_prefix="sender")
    results: list[BatchResult] = []
    cpu_before = stack.cpu_times()
    try:
        with progress:
            task = progress.add_task(label, total=total, rate="")
            started = time.monotonic()
            futures: list[Future[BatchResult]] = [pool.submit(send, b) for b in batches]
            done = 0
            for future in as_completed(futures):
                result = future.result()
                if result.state["status"] != "success":
                    raise PushFailed(
                        f"{result.batch.request_id} failed: {result.state.get('errorMessage')}"
                    )
                results.append(result)
                done += result.batch.size
                rate = done / (time.monotonic() - started)
                progress.update(task, completed=done, rate=f"{rate:,.0f}/s")
            # The last batch to finish ends the run (first push start -> last success).
            seconds = max(r.done_at for r in results) - started
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
    for pair in made:
        for each in pair:
            each.close()
    cpu = cpu_used(cpu_before, stack.cpu_times())
    results.sort(key=lambda r: r.batch.request_id)
    return PushRun(label, total, seconds, results, cpu)


@dataclass
class WorkerStages:
    """Where a run's jobs spent their time (job rows and persisted events). The worker
    stages one job while it writes the one before, so the phases overlap across jobs."""

    jobs: int
    queued_s: float  # median per job: accepted by the api -> claimed by the worker
    staging_s: float  # median per job: claimed -> validated, staged and deduplicated
    writing_s: float  # median per job: previous job written (or staged) -> finished
    write_share: float  # the jobs' writing time as a share of the run's wall time
    api_push_s: float  # median seconds one POST took (the api's accept path)


def worker_stages(stack: BenchStack, run: PushRun) -> WorkerStages:
    request_ids = [r.batch.request_id for r in run.results]
    query = """
        SELECT j.created_at, j.started_at,
               min(e.created_at) FILTER (WHERE e.type = 'progress'), j.finished_at
        FROM sync_jobs j JOIN sync_events e ON e.job_id = j.id
        WHERE j.request_id = ANY(%s)
        GROUP BY j.id
        ORDER BY j.finished_at
    """
    with stack.db() as conn:
        rows = conn.execute(query, (request_ids,)).fetchall()
    queued, staging, writing = [], [], []
    previous_end = None
    for created, started, progressed, finished in rows:
        staged = progressed or started
        queued.append((started - created).total_seconds())
        staging.append((staged - started).total_seconds())
        write_start = staged if previous_end is None else max(staged, previous_end)
        writing.append((finished - write_start).total_seconds())
        previous_end = finished
    return WorkerStages(
        jobs=len(rows),
        queued_s=median(queued),
        staging_s=median(staging),
        writing_s=median(writing),
        write_share=sum(writing) / run.seconds,
        api_push_s=median(r.pushed_s for r in run.results),
    )


# --- raw psycopg and dlt -------------------------------------------------------------------


def to_rows(entries: list[dict[str, Any]]) -> list[Row]:
    """The tuples the worker COPYs for these entries (key columns, then content)."""
    fields = tuple(ENTRY_FIELDS)
    return [(LANG, e[LANG], *(e.get(f) for f in fields), None) for e in entries]


def _ids(names: tuple[str, ...], alias: str | None = None) -> sql.Composed:
    if alias:
        return sql.SQL(", ").join(sql.Identifier(alias, n) for n in names)
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def prepare_raw_table(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(RAW_TABLE)))
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE dictionary_entries INCLUDING ALL)").format(
                sql.Identifier(RAW_TABLE)
            )
        )


@dataclass
class RawResult:
    seconds: float
    created: int
    updated: int


def run_raw(database_url: str, rows: list[Row]) -> RawResult:
    """One COPY into a temp staging table, one upsert, one commit: PostgreSQL's own pace."""
    sets = sql.SQL(", ").join(
        [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in CONTENT]
        + [sql.SQL("updated_at = now()")]
    )
    upsert = sql.SQL(
        """
        WITH up AS (
            INSERT INTO {table} AS t ({cols}) SELECT {cols} FROM raw_stage
            ON CONFLICT (lang, word) DO UPDATE SET {sets}
            WHERE ROW({t_cols}) IS DISTINCT FROM ROW({ex_cols})
            RETURNING t.xmax = 0 AS created
        )
        SELECT count(*) FILTER (WHERE created), count(*) FILTER (WHERE NOT created) FROM up
        """
    ).format(
        table=sql.Identifier(RAW_TABLE),
        cols=_ids(COLUMNS),
        sets=sets,
        t_cols=_ids(CONTENT, "t"),
        ex_cols=_ids(CONTENT, "excluded"),
    )
    with psycopg.connect(database_url) as conn:
        started = time.monotonic()
        conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE raw_stage ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA"
            ).format(_ids(COLUMNS), sql.Identifier(RAW_TABLE))
        )
        with (
            conn.cursor() as cur,
            cur.copy(sql.SQL("COPY raw_stage ({}) FROM STDIN").format(_ids(COLUMNS))) as copy,
        ):
            for row in rows:
                copy.write_row(row)
        counts = conn.execute(upsert).fetchone()
        conn.commit()
        seconds = time.monotonic() - started
    created, updated = counts or (0, 0)
    return RawResult(seconds, int(created), int(updated))


def _signalled(exc: BaseException | None) -> bool:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, KeyboardInterrupt) or type(exc).__name__ == "SignalReceivedException":
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def run_dlt(database_url: str, rows: list[Row], workdir: Path) -> float:
    """dlt's merge load of the same rows (primary key lang+word), defaults otherwise."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt

    # dlt insists on a password; the embedded server trusts local connections and ignores it.
    credentials = database_url.replace("postgresql://postgres@", "postgresql://postgres:x@", 1)
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_dictionary_{os.getpid()}",
        destination=dlt.destinations.postgres(credentials=credentials),
        dataset_name=DLT_DATASET,
        pipelines_dir=str(workdir / "dlt"),
    )

    @dlt.resource(
        name="dictionary_entries",
        write_disposition="merge",
        primary_key=KEYS,
        columns={"extra": {"data_type": "json"}},  # all null here; keep the same table shape
    )
    def entries() -> Any:
        for start in range(0, len(rows), 10_000):
            yield [dict(zip(COLUMNS, row, strict=True)) for row in rows[start : start + 10_000]]

    started = time.monotonic()
    try:
        pipeline.run(entries())
    except Exception as exc:
        # dlt takes over SIGINT/SIGTERM while it loads and reports them as a failed step.
        if _signalled(exc):
            raise KeyboardInterrupt from exc
        raise
    seconds = time.monotonic() - started
    from dlt.common.runtime import signals

    if signals.was_signal_received():  # a signal dlt absorbed after its last step
        raise KeyboardInterrupt
    with psycopg.connect(database_url) as conn:
        loaded = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(DLT_DATASET, "dictionary_entries")
            )
        ).fetchone()
    if not loaded or loaded[0] != len(rows):
        raise RuntimeError(f"dlt loaded {loaded} rows, expected {len(rows)}")
    return seconds


# --- the run -------------------------------------------------------------------------------


def change_some(
    entries: list[dict[str, Any]], fraction: float, seed: int
) -> tuple[list[dict[str, Any]], int]:
    """A copy of ``entries`` with ``fraction`` of them given a revised example sentence."""
    picked = random.Random(seed).sample(range(len(entries)), round(len(entries) * fraction))
    changed = list(entries)
    for i in picked:
        changed[i] = {**entries[i], "example": f"{entries[i]['example']} (revised)"}
    return changed, len(picked)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=200_000, help="entries to push")
    parser.add_argument(
        "--batch-size", type=int, default=25_000, help="entries per batch (server max 50,000)"
    )
    parser.add_argument(
        "--changed", type=float, default=0.1, help="fraction changed in the second push"
    )
    parser.add_argument("--senders", type=int, default=2, help="concurrent sender threads")
    parser.add_argument(
        "--poll",
        type=float,
        default=0.0,
        help="seconds between status polls of one sender; 0 (default): follow the job's "
        "SSE stream until it ends, then read the status once",
    )
    parser.add_argument("--seed", type=int, default=4, help="seed of the generated entries")
    parser.add_argument("--skip-dlt", action="store_true", help="leave dlt out")
    parser.add_argument("--keep", action="store_true", help="keep logs and data afterwards")
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the api and worker (repeatable), e.g. SYNCBUS_SSE_DB_POLL_S=5",
    )
    args = parser.parse_args(argv)
    if args.entries < 1 or args.batch_size < 1 or args.senders < 1:
        parser.error("--entries, --batch-size and --senders must be positive")
    if not 0 <= args.changed <= 1:
        parser.error("--changed must be between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_handler()
    console = Console()
    run_id = f"{os.getpid()}-{int(time.time())}"
    load_before = load_average()

    with console.status(f"generating {args.entries:,} entries"):
        entries = make_entries(args.entries, lang=LANG, seed=args.seed)
        second, changed = change_some(entries, args.changed, args.seed + 1)
        first_batches = encode_batches(entries, args.batch_size, run_id, "first")
        second_batches = encode_batches(second, args.batch_size, run_id, "second")
        rows, rows_second = to_rows(entries), to_rows(second)
    body_mb = sum(len(b.body) for b in first_batches) / 1e6
    console.print(
        f"{args.entries:,} entries in {len(first_batches)} batches of up to "
        f"{args.batch_size:,} ({body_mb:,.0f} MB of JSON); {changed:,} change in the second push"
    )

    try:
        with BenchStack(keep=args.keep, extra_env=service_env(args.service_env)) as stack:
            console.print(f"stack up (durable PostgreSQL, broker, api, worker) in {stack.workdir}")
            console.print(f"warm-up batch applied in {warm_up(stack):.1f}s")

            stack.checkpoint()
            first = run_push(
                stack, first_batches, args.senders, "syncbus push 1", console, args.poll
            )
            if (first.total("created"), first.total("updated")) != (args.entries, 0):
                raise PushFailed(
                    f"first push: created={first.total('created')} "
                    f"updated={first.total('updated')}, expected {args.entries} created"
                )
            stages_first = worker_stages(stack, first)

            stack.checkpoint()
            with console.status("raw: COPY + one upsert"):
                prepare_raw_table(stack.database_url)
                raw = run_raw(stack.database_url, rows)
            console.print(f"raw COPY + upsert: {raw.seconds:.2f}s")
            stack.checkpoint()
            with console.status("per-batch loop: job commit, then COPY + upsert + audit"):
                raw_loop.prepare(stack.database_url)
                size = args.batch_size
                batches_rows = [rows[i : i + size] for i in range(0, len(rows), size)]
                loop_s = raw_loop.run_loop(stack.database_url, batches_rows, KEYS, CONTENT)
            console.print(f"per-batch loop: {loop_s:.2f}s")

            dlt_s: float | None = None
            if not args.skip_dlt:
                stack.checkpoint()
                with console.status("dlt: merge load"):
                    dlt_s = run_dlt(stack.database_url, rows, stack.workdir)
                console.print(f"dlt merge: {dlt_s:.2f}s")

            stack.checkpoint()
            again = run_push(
                stack, second_batches, args.senders, "syncbus push 2", console, args.poll
            )
            stages_again = worker_stages(stack, again)
            stack.checkpoint()
            raw_again = run_raw(stack.database_url, rows_second)
    except KeyboardInterrupt:
        console.print(INTERRUPTED)
        return 130

    console.print(load_line(load_before))
    counts = (again.total("created"), again.total("updated"), again.total("unchanged"))
    expected = (0, changed, args.entries - changed)
    report(
        console, args, first, raw, loop_s, dlt_s, again, raw_again, counts, expected,
        [stages_first, stages_again],
    )  # fmt: skip
    if counts != expected or raw_again.updated != changed:
        console.print(
            f"[red]second push counts (created, updated, unchanged) = {counts}, "
            f"expected {expected}; raw updated {raw_again.updated}[/red]"
        )
        return 1
    return 0


def _ratio(value: float, target: float, fmt: str) -> str:
    colour = "green" if value >= target else "red"
    return f"[{colour}]{value:{fmt}}[/{colour}]"


def report(
    console: Console,
    args: argparse.Namespace,
    first: PushRun,
    raw: RawResult,
    loop_s: float,
    dlt_s: float | None,
    again: PushRun,
    raw_again: RawResult,
    counts: tuple[int, int, int],
    expected: tuple[int, int, int],
    stages: list[WorkerStages],
) -> None:
    n = args.entries
    raw_rate = n / raw.seconds
    # Issue 13's targets: 5,000-entry batches at 0.5x the raw load, 25,000-entry ones at 0.6x.
    raw_target = 0.6 if args.batch_size >= 25_000 else 0.5
    table = Table(
        title=f"Dictionary push: {n:,} entries, batches of {args.batch_size:,}, "
        f"{args.senders} senders, {os.cpu_count()} CPUs, durable PostgreSQL"
    )
    table.add_column("measurement")
    table.add_column("seconds", justify="right")
    table.add_column("entries/s", justify="right")
    table.add_column("syncbus ÷ this", justify="right")
    table.add_column("target", justify="right")
    table.add_row("syncbus end to end (push 1, new)", f"{first.seconds:.2f}", f"{first.rate:,.0f}")
    table.add_row(
        "raw COPY + one upsert (psycopg 3)",
        f"{raw.seconds:.2f}",
        f"{raw_rate:,.0f}",
        _ratio(first.rate / raw_rate, raw_target, ".2f"),
        f"≥ {raw_target:.2f}",
    )
    loop_rate = n / loop_s
    table.add_row(
        "per-batch loop: job commit, then COPY + upsert + audit rows + job update commit",
        f"{loop_s:.2f}",
        f"{loop_rate:,.0f}",
        _ratio(first.rate / loop_rate, 1.0, ".2f"),
        "≥ 1.00" if args.batch_size <= 1000 else "",
    )
    if dlt_s is not None:
        dlt_rate = n / dlt_s
        table.add_row(
            "dlt merge (primary key lang+word)",
            f"{dlt_s:.2f}",
            f"{dlt_rate:,.0f}",
            _ratio(first.rate / dlt_rate, 5, ".1f") + "x",
            "≥ 5x",
        )
    table.add_section()
    table.add_row(
        f"syncbus push 2 ({args.changed:.0%} changed)", f"{again.seconds:.2f}", f"{again.rate:,.0f}"
    )
    raw_again_rate = n / raw_again.seconds
    table.add_row(
        "raw second pass (same changes)",
        f"{raw_again.seconds:.2f}",
        f"{raw_again_rate:,.0f}",
        f"{again.rate / raw_again_rate:.2f}",
    )
    console.print(table)

    ok = counts == expected
    verdict = "[green]as expected[/green]" if ok else f"[red]expected {expected}[/red]"
    console.print(
        f"push 2 job counts: created={counts[0]:,} updated={counts[1]:,} "
        f"unchanged={counts[2]:,} ({verdict}); raw pass 2 updated={raw_again.updated:,}"
    )

    where = Table(title="Where the time went (per job: medians; jobs overlap)")
    where.add_column("push")
    where.add_column("jobs", justify="right")
    where.add_column("POST", justify="right")
    where.add_column("queued", justify="right")
    where.add_column("staging", justify="right")
    where.add_column("writing", justify="right")
    where.add_column("writing, share of wall", justify="right")
    where.add_column("CPU s: worker / api / PostgreSQL / broker / client", justify="right")
    for label, s, run in zip(("push 1", "push 2"), stages, (first, again), strict=True):
        cpu = run.cpu
        where.add_row(
            label,
            str(s.jobs),
            f"{s.api_push_s:.2f}s",
            f"{s.queued_s:.2f}s",
            f"{s.staging_s:.2f}s",
            f"{s.writing_s:.2f}s",
            f"{s.write_share:.0%}",
            " / ".join(f"{cpu.get(part, 0):.1f}" for part in CPU_PARTS)
            + f" of {run.seconds * (os.cpu_count() or 1):.1f}",
        )
    console.print(where)


if __name__ == "__main__":
    sys.exit(main())
