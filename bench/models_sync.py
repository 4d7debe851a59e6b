"""Models sync: a generated catalogue of N models over the four sources, synced end to end.

    python bench/models_sync.py [--models 20000] [--changed 0.01]

``bench/models_catalogue.py`` generates ``--models`` distinct models listed by one to four of
models.dev, OpenRouter, Hugging Face and Artificial Analysis in their real wire formats (about
45/45/40/20% of the models each, a third of them listed by 2-4 sources, spelled differently by
each), and serves them from a threaded HTTP server on 127.0.0.1. A private syncbus (embedded
broker, durable PostgreSQL, the real ``python -m cli api`` and ``worker``; ``bench/harness.py``)
points its four base URLs at it, and ``POST /api/internal/sync-models`` (Bearer token, waiting
for the result) is timed end to end, three times:

1. full sync into an empty catalogue: must add exactly N models;
2. the same catalogue again: must report 0 added/updated/removed and write no row (every
   ``model_catalog`` row keeps its ``xmin``; ``model_snapshots`` keeps its row count);
3. ``--changed`` of the models changed at their source (the input price in the source whose
   price wins, or the like count of a Hugging Face-only model): ``updated`` must equal that
   count, and exactly those rows get a new ``xmin`` and a snapshot.

Targets (issue 13): full sync <= 5 s, no-change re-sync <= 1 s. Where the time goes comes from
the job's own ``sync_events`` (fetch, unify, COPY, upsert, finish) and, with ``--profile``, from
py-spy samples of the worker. Exit status: 0 all good, 1 a check failed, 2 a target missed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from schemas.models import SOURCES, SourceName

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    CPU_PARTS,
    INTERRUPTED,
    BenchStack,
    cpu_used,
    install_sigterm_handler,
    load_average,
    load_line,
    warm_up,
)
from models_catalogue import (
    PATHS,
    CatalogueServer,
    Model,
    Rendered,
    Served,
    change,
    describe,
    generate,
    render,
)

TOKEN = "bench-models-token"
AA_KEY = "bench-aa-key"
TARGETS = {"full": 5.0, "no-change": 1.0}
WAIT_S = 300  # SYNCBUS_MODELS_WAIT_S: the trigger answers with the result, not 202


# --- one sync ------------------------------------------------------------------------------


@dataclass
class DbState:
    xmins: dict[str, str]
    locked: int  # rows whose xmax is set (locked or updated since they were written)
    snapshots: int
    wal_lsn: str


@dataclass
class SyncRun:
    label: str
    seconds: float
    http_status: int
    body: dict[str, Any]
    headers: dict[str, str]
    job: dict[str, Any]
    events: list[tuple[int, str, dict[str, Any], datetime]]
    posted_at: float  # time.time() when the POST left
    answered_at: float  # time.time() when the answer arrived
    before: DbState
    after: DbState
    wal_bytes: int
    cpu: dict[str, float]
    served: list[Served]
    settle_s: float = 0.0  # worker busy after the answer (publishing change events)
    profile: Path | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def rewritten(self) -> int:
        """Rows added, removed, or written again (new xmin)."""
        ids = self.before.xmins.keys() | self.after.xmins.keys()
        return sum(1 for i in ids if self.before.xmins.get(i) != self.after.xmins.get(i))

    @property
    def new_snapshots(self) -> int:
        return self.after.snapshots - self.before.snapshots

    def count(self, key: str) -> int:
        return int(self.body.get(key) or 0)


def db_state(stack: BenchStack) -> DbState:
    with stack.db() as conn:
        xmins = {
            str(i): str(x) for i, x in conn.execute("SELECT id, xmin::text FROM model_catalog")
        }
        locked_row = conn.execute(
            "SELECT count(*) FROM model_catalog WHERE xmax::text <> '0'"
        ).fetchone()
        snaps_row = conn.execute("SELECT count(*) FROM model_snapshots").fetchone()
        lsn_row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert locked_row is not None and snaps_row is not None and lsn_row is not None
    return DbState(xmins, int(locked_row[0]), int(snaps_row[0]), str(lsn_row[0]))


def wal_between(stack: BenchStack, before: str, after: str) -> int:
    with stack.db() as conn:
        row = conn.execute("SELECT pg_wal_lsn_diff(%s, %s)", (after, before)).fetchone()
    return int(row[0]) if row else 0


def settle(stack: BenchStack, quiet_cpu_s: float = 0.03, window_s: float = 0.25) -> float:
    """Wait until the worker is idle (two quiet windows in a row); returns the seconds waited."""
    started = time.monotonic()
    quiet = 0
    while quiet < 2 and time.monotonic() - started < 60:
        before = stack.cpu_times()
        time.sleep(window_s)
        used = cpu_used(before, stack.cpu_times()).get("worker", 0.0)
        quiet = quiet + 1 if used < quiet_cpu_s else 0
    return max(0.0, time.monotonic() - started - 2 * window_s)


def _wait_job(stack: BenchStack, job_id: str, timeout_s: float = 900) -> None:
    """After a 202: poll the job row until it is final."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stack.check_alive()
        with stack.db() as conn:
            row = conn.execute("SELECT status FROM sync_jobs WHERE id = %s", (job_id,)).fetchone()
        if row and row[0] in ("succeeded", "failed", "cancelled"):
            return
        time.sleep(0.05)
    raise TimeoutError(f"models sync {job_id} not final after {timeout_s:.0f}s")


def _job(stack: BenchStack, job_id: str) -> tuple[dict[str, Any], list[Any]]:
    with stack.db() as conn:
        cur = conn.execute(
            "SELECT status, discovered, created, updated, deleted, unchanged, result,"
            " error_message, started_at, finished_at FROM sync_jobs WHERE id = %s",
            (job_id,),
        )
        row = cur.fetchone()
        assert row is not None and cur.description is not None
        job = dict(zip([c.name for c in cur.description], row, strict=True))
        events = conn.execute(
            "SELECT seq, type, data, created_at FROM sync_events WHERE job_id = %s ORDER BY seq",
            (job_id,),
        ).fetchall()
    return job, events


class Profiler:
    """``py-spy record`` of the worker while one sync runs (raw collapsed stacks)."""

    def __init__(self, pid: int, path: Path, rate: int) -> None:
        self.path = path
        command = ["py-spy", "record", "--pid", str(pid), "--rate", str(rate), "--nonblocking"]
        self.proc = subprocess.Popen(
            [*command, "--format", "raw", "--output", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(1.0)  # attached and sampling

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def run_sync(
    stack: BenchStack,
    server: CatalogueServer,
    label: str,
    profile_dir: Path | None,
    profile_rate: int,
) -> SyncRun:
    stack.checkpoint()
    before = db_state(stack)
    server.served(clear=True)
    profiler = None
    if profile_dir is not None:
        profiler = Profiler(stack.procs["worker"].pid, profile_dir / f"{label}.txt", profile_rate)
    try:
        cpu_before = stack.cpu_times()
        with httpx.Client(timeout=WAIT_S + 60) as client:
            posted_at = time.time()
            started = time.perf_counter()
            response = client.post(
                f"{stack.url}/api/internal/sync-models",
                content=b'{"source":"bench/models_sync.py"}',
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            )
            job_id = response.headers.get("X-Sync-Log-ID", "")
            if response.status_code == 202 and job_id:
                _wait_job(stack, job_id)
            seconds = time.perf_counter() - started
            answered_at = time.time()
        cpu = cpu_used(cpu_before, stack.cpu_times())
    finally:
        if profiler is not None:
            profiler.stop()
    served = server.served()
    if not job_id:
        raise RuntimeError(f"{label}: HTTP {response.status_code}: {response.text[:500]}")
    job, events = _job(stack, job_id)
    body: dict[str, Any] = response.json() if response.status_code != 202 else {}
    if response.status_code == 202:  # counts from the job row instead
        body = {
            "status": job["status"],
            "modelsProcessed": job["discovered"],
            "added": job["created"],
            "updated": job["updated"],
            "removed": job["deleted"],
            "unchanged": job["unchanged"],
        }
    settle_s = settle(stack)
    after = db_state(stack)
    return SyncRun(
        label=label,
        seconds=seconds,
        http_status=response.status_code,
        body=body,
        headers=dict(response.headers),
        job=job,
        events=[(int(s), str(t), dict(d), c) for s, t, d, c in events],
        posted_at=posted_at,
        answered_at=answered_at,
        before=before,
        after=after,
        wal_bytes=wal_between(stack, before.wal_lsn, after.wal_lsn),
        cpu=cpu,
        served=served,
        settle_s=settle_s,
        profile=profiler.path if profiler is not None else None,
    )


# --- checks --------------------------------------------------------------------------------


def check(run: SyncRun, *, added: int, updated: int, removed: int, models: int) -> None:
    """Fill ``run.problems`` with every way the sync differs from what it must have done."""
    p = run.problems
    if run.body.get("status") != "succeeded":
        p.append(f"status {run.body.get('status')!r}: {run.body.get('error')}")
    got = (run.count("added"), run.count("updated"), run.count("removed"))
    if got != (added, updated, removed):
        p.append(f"added/updated/removed = {got}, expected {(added, updated, removed)}")
    if run.count("modelsProcessed") != models:
        p.append(f"modelsProcessed {run.count('modelsProcessed')}, expected {models}")
    if run.http_status == 200 and run.headers.get("x-models-processed") != str(models):
        p.append(f"X-Models-Processed {run.headers.get('x-models-processed')!r}")
    if len(run.after.xmins) != models:
        p.append(f"model_catalog has {len(run.after.xmins)} rows, expected {models}")
    written = added + updated + removed
    if run.rewritten != written:
        p.append(f"{run.rewritten} rows got a new xmin, expected {written}")
    if run.new_snapshots != written:
        p.append(f"{run.new_snapshots} new model_snapshots rows, expected {written}")
    failed = [s for s in run.job["result"].get("sources", []) if s.get("state") != "ok"]
    if failed:
        p.append(f"sources not ok: {failed}")


# --- where the time went -------------------------------------------------------------------

PHASES = (
    ("queue", "POST -> worker starts the job (api, Kafka, claim)"),
    ("fetch", "fetch + parse, 4 sources in parallel"),
    ("unify", "source report logs + unify"),
    ("copy", "transaction, temp tables, rows -> COPY"),
    ("upsert", "ANALYZE, upsert, delete, snapshots, change events"),
    ("finish", "job row, summary logs"),
    ("reply", "commit, api poll, HTTP answer"),
)


def phases(run: SyncRun) -> dict[str, float]:
    """Seconds per phase, from the job's events (their created_at is when the worker made
    them); the phases add up to the wall time."""

    def at(match: str, last: bool = False) -> float | None:
        found = [
            c.timestamp()
            for _, t, d, c in run.events
            if (t == match) or (t == "log" and str(d.get("message", "")).startswith(match))
        ]
        if not found:
            return None
        return found[-1] if last else found[0]

    start = at("Starting models sync") or run.posted_at
    fetching = at("Fetching") or start
    reports = [at(f"{s}: ") for s in SOURCES]
    reported = min((r for r in reports if r is not None), default=fetching)
    # A sync whose sources and catalogue are as the last one left them skips unify and the diff.
    unified = at("Unified") or at("Sources unchanged") or reported
    last_progress = at("progress", last=True) or unified
    applied = at("Applying updates") or last_progress
    complete = at("complete") or applied
    marks = [
        run.posted_at,
        fetching,
        reported,
        unified,
        last_progress,
        applied,
        complete,
        run.answered_at,
    ]
    return {name: marks[i + 1] - marks[i] for i, (name, _) in enumerate(PHASES)}


def source_lines(run: SyncRun) -> dict[SourceName, str]:
    """Per source: the worker's own fetch+parse time, and what the server sent."""
    reports = {s["source"]: s for s in run.job["result"].get("sources", [])}
    served: dict[SourceName | None, list[Served]] = defaultdict(list)
    for s in run.served:
        served[s.source].append(s)
    lines: dict[SourceName, str] = {}
    for source in SOURCES:
        report = reports.get(source, {})
        hits = served.get(source, [])
        size = sum(h.size for h in hits) / 1e6
        serve_s = sum(h.finished - h.started for h in hits)
        pages = f", {len(hits)} pages" if len(hits) > 1 else ""
        lines[source] = (
            f"{report.get('duration_ms', 0) / 1000:.2f} ({report.get('models', 0):,} items, "
            f"{size:.1f} MB{pages}; served in {serve_s:.2f})"
        )
    return lines


# Where a sync's own work is (cli/, streams/worker.py and streams/app.py only wrap everything).
SYNC_CODE = ("db/", "producers/", "schemas/", "streams/domains/")


def hot_spots(
    path: Path, top: int = 12
) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """(samples, busiest functions by own time, busiest syncbus functions including callees),
    percentages of the samples of a py-spy raw (collapsed stacks) file."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";") if " (" in f]
        if frames:
            own[frames[-1]] += count
        for name in set(frames):
            if any(f"({d}" in name for d in SYNC_CODE) or "SyncPipeline._run" in name:
                incl[name] += count
    if not total:
        return 0, [], []
    return (
        total,
        [(n, 100 * c / total) for n, c in own.most_common(top)],
        [(n, 100 * c / total) for n, c in incl.most_common(top)],
    )


def _frame(frame: str) -> str:
    """``merge (/work/main/db/merge.py:123)`` -> ``merge (db/merge.py)``: one row a function."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3.11/", str(Path(__file__).parents[1]) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


# --- the run -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--models", type=int, default=20_000, help="distinct models")
    parser.add_argument(
        "--changed", type=float, default=0.01, help="fraction changed before the third sync"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated catalogue")
    parser.add_argument(
        "--hf-page-size", type=int, default=1000, help="HUGGINGFACE_PAGE_SIZE (max 1000)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the worker with py-spy during each sync; raw stacks go to DIR "
        "(sampling slows the worker a little)",
    )
    parser.add_argument("--profile-rate", type=int, default=200, help="py-spy samples/s")
    parser.add_argument("--keep", action="store_true", help="keep logs and data afterwards")
    args = parser.parse_args(argv)
    if args.models < 1:
        parser.error("--models must be positive")
    if not 0 <= args.changed <= 1:
        parser.error("--changed must be between 0 and 1")
    if not 1 <= args.hf_page_size <= 1000:
        parser.error("--hf-page-size must be 1..1000")
    return args


def stack_env(server: CatalogueServer, models: int, hf_page_size: int) -> dict[str, str]:
    pages = models // hf_page_size + 10
    return {
        "MODELSDEV_BASE_URL": server.base_url,
        "OPENROUTER_BASE_URL": server.base_url,
        "HUGGINGFACE_BASE_URL": server.base_url,
        "ARTIFICIALANALYSIS_BASE_URL": server.base_url,
        "ARTIFICIALANALYSIS_API_KEY": AA_KEY,
        "HUGGINGFACE_TOKEN": "",
        "HUGGINGFACE_SEARCH": "",
        "HUGGINGFACE_FILTER": "text-generation",
        "HUGGINGFACE_SORT": "downloads",
        "HUGGINGFACE_PAGE_SIZE": str(hf_page_size),
        "HUGGINGFACE_MAX_PAGES": str(pages),
        "INTERNAL_SYNC_TOKEN": TOKEN,
        "SYNCBUS_MODELS_WAIT_S": str(WAIT_S),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_handler()
    # Wide enough for the tables when the output goes to a file or a pipe.
    console = Console(width=None if sys.stdout.isatty() else 190)
    command = "python " + shlex.join(["bench/models_sync.py", *sys.argv[1:]])
    load_before = load_average()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)

    with console.status(f"generating {args.models:,} models"):
        started = time.perf_counter()
        models = generate(args.models, args.seed)
        changed_models, changes = change(models, args.changed, args.seed + 1)
        first = render(models, args.hf_page_size)
        second = render(changed_models, args.hf_page_size)
        generated_s = time.perf_counter() - started
    describe_catalogue(console, models, first, args, changes, generated_s)

    runs: list[SyncRun] = []
    try:
        with (
            CatalogueServer(AA_KEY) as server,
            BenchStack(
                keep=args.keep, extra_env=stack_env(server, args.models, args.hf_page_size)
            ) as stack,
        ):
            console.print(f"stack up (durable PostgreSQL, broker, api, worker) in {stack.workdir}")
            console.print(f"warm-up dictionary batch applied in {warm_up(stack):.1f}s")
            settle(stack)
            server.publish(first)
            plan: list[tuple[str, Rendered, int, int]] = [
                ("full", first, args.models, 0),  # label, served, added, updated
                ("no-change", first, 0, 0),
                (f"{args.changed:.0%} changed", second, 0, len(changes)),
            ]
            for label, rendered, added, updated in plan:
                server.publish(rendered)
                with console.status(f"sync: {label}"):
                    run = run_sync(stack, server, label, args.profile, args.profile_rate)
                check(run, added=added, updated=updated, removed=0, models=args.models)
                runs.append(run)
                verdict = "ok" if not run.problems else "; ".join(run.problems)
                console.print(f"{label}: {run.seconds:.2f}s ({verdict})")
    except KeyboardInterrupt:
        console.print(INTERRUPTED)
        return 130

    console.print(load_line(load_before))
    report(console, args, runs, command)
    if any(r.problems for r in runs):
        return 1
    missed = [r for r in runs if r.label in TARGETS and r.seconds > TARGETS[r.label]]
    return 2 if missed else 0


def describe_catalogue(
    console: Console,
    models: list[Model],
    rendered: Rendered,
    args: argparse.Namespace,
    changes: list[str],
    generated_s: float,
) -> None:
    facts = describe(models)
    per = facts["per_source"]
    listing = ", ".join(
        f"{s} {per.get(s, 0):,} ({per.get(s, 0) / len(models):.0%}, "
        f"{rendered.size(s, args.hf_page_size) / 1e6:.1f} MB)"
        for s in SOURCES
    )
    spread = ", ".join(f"{k} source(s): {v:,}" for k, v in facts["by_count"].items())
    console.print(
        f"{len(models):,} models generated and serialised in {generated_s:.1f}s: {listing}\n"
        f"  {spread}; {sum(rendered.records.values()):,} source records incl. "
        f"{rendered.variants:,} OpenRouter :free variants; {facts['dated']:,} dated keys; "
        f"{facts['or_own_spelling']:,} OpenRouter slugs that meet HF only by hugging_face_id\n"
        f"  third sync changes {len(changes):,}: "
        + ", ".join(f"{k} {v:,}" for k, v in Counter(changes).most_common())
    )
    paths = ", ".join(PATHS.values())
    console.print(f"  served on 127.0.0.1 at {paths}; HF pages of {args.hf_page_size}")


def report(console: Console, args: argparse.Namespace, runs: list[SyncRun], command: str) -> None:
    table = Table(
        title=f"Models sync: {args.models:,} models over 4 sources, {os.cpu_count()} CPUs, "
        "durable PostgreSQL, real api + worker"
    )
    table.add_column("sync")
    for name in ("wall s", "target"):
        table.add_column(name, justify="right")
    table.add_column("result")
    for name in (
        "added/updated/removed/unchanged",
        "rows written (new xmin)",
        "snapshots +",
        "rows with xmax set",
        "WAL",
    ):
        table.add_column(name, justify="right")
    table.add_column("checks")
    for run in runs:
        target = TARGETS.get(run.label)
        if target is None:
            target_text, result = "—", ""
        elif run.seconds <= target:
            target_text, result = f"≤ {target:g} s", "[green]PASS[/green]"
        else:
            target_text, result = f"≤ {target:g} s", "[red]FAIL[/red]"
        counts = " / ".join(
            f"{run.count(k):,}" for k in ("added", "updated", "removed", "unchanged")
        )
        checks = "[green]ok[/green]" if not run.problems else "[red]" + "; ".join(run.problems)
        table.add_row(
            run.label,
            f"{run.seconds:.2f}",
            target_text,
            result,
            counts,
            f"{run.rewritten:,}",
            f"{run.new_snapshots:,}",
            f"{run.after.locked:,}",
            f"{run.wal_bytes / 1e6:.1f} MB",
            checks,
        )
    console.print(table)

    where = Table(title="Where the time went (seconds, from the job's sync_events)")
    where.add_column("phase")
    where.add_column("what")
    for run in runs:
        where.add_column(run.label, justify="right")
    split = [phases(r) for r in runs]
    for name, what in PHASES:
        where.add_row(name, what, *(f"{s[name]:.2f}" for s in split))
    where.add_row("total", "= wall time", *(f"{r.seconds:.2f}" for r in runs))
    where.add_section()
    lines = [source_lines(r) for r in runs]
    for source in SOURCES:
        where.add_row(f"  {source}", "its fetch + parse", *(ln[source] for ln in lines))
    where.add_section()
    for proc in CPU_PARTS:
        where.add_row(
            f"CPU {proc}",
            "CPU seconds used in the sync",
            *(f"{r.cpu.get(proc, 0):.2f}" for r in runs),
        )
    where.add_row(
        "worker after reply",
        "busy after the answer (publishing change events)",
        *(f"{r.settle_s:.2f}" for r in runs),
    )
    console.print(where)

    for run in runs:
        if run.profile is None:
            continue
        samples, own, incl = hot_spots(run.profile)
        if not samples:
            continue
        prof = Table(title=f"py-spy of the worker, {run.label}: {samples:,} busy samples")
        prof.add_column("busiest functions (own time)")
        prof.add_column("%", justify="right")
        prof.add_column("busiest syncbus functions (incl. callees)")
        prof.add_column("%", justify="right")
        for i in range(max(len(own), len(incl))):
            a = own[i] if i < len(own) else ("", 0.0)
            b = incl[i] if i < len(incl) else ("", 0.0)
            prof.add_row(a[0], f"{a[1]:.1f}", b[0], f"{b[1]:.1f}")
        console.print(prof)

    console.print(f"command: [bold]{command}[/bold]")


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
