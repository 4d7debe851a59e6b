"""Scale-out: dictionary pushes on 4 scopes with one worker, then with two, in one run.

    python bench/scale_out.py [--batches 10] [--batch-size 5000] [--senders 4]

One durable embedded PostgreSQL, the embedded broker, one api and real worker processes.
Four languages (one per partition of the 4-partition request topic) get ``--batches``
batches of ``--batch-size`` new entries each, pushed by ``--senders`` threads (one language
each by default: a sender pushes a batch, follows its SSE stream to the end, then pushes the
next). First with one worker; then a second worker joins the group, the dictionary tables are
emptied, and the same load runs again on fresh headwords. Prints entries/s of both runs,
their ratio, the jobs each worker ran, and the CPU each process used, so the reader sees
what bounds the ratio on this machine.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from cli.processes import free_port, spawn_syncbus, stop_process
from producers.sender import encode_body

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
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
    warm_up,
)

# One scope per partition: the producer's partitioner is CRC32(key) % 4, and the keys
# dictionary:<lang> of these give partitions 0, 1, 2, 3 (a second set for the second run).
LANGS_ONE = ("de", "en", "nl", "it")
LANGS_TWO = ("es", "fr", "cs", "pt")
WORKERS = ("worker", "worker-2")
JOBS_METRIC = re.compile(
    r'^syncbus_jobs_processed_total\{domain="dictionary",outcome="succeeded"\} (\S+)$', re.M
)


class ScaleStack(BenchStack):
    """The harness's stack, with more than one worker, each with its own /metrics port."""

    metrics_ports: dict[str, int]

    def __enter__(self) -> ScaleStack:
        self.metrics_ports = {}
        super().__enter__()
        return self

    def start_worker(self, name: str = "worker") -> None:
        port = free_port()
        self.metrics_ports[name] = port
        env = {**self.env, "SYNCBUS_WORKER_METRICS_PORT": str(port)}
        self.procs[name] = spawn_syncbus(["worker"], env, self.workdir / f"{name}.log")

    def jobs_done(self, name: str) -> int:
        """Dictionary jobs worker ``name`` has applied, from its /metrics."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_ports[name]}/metrics").text
        except httpx.TransportError:
            return 0
        match = JOBS_METRIC.search(text)
        return int(float(match.group(1))) if match else 0

    def close(self) -> None:
        for name in [n for n in self.procs if n not in ("api", "worker")]:
            stop_process(self.procs.pop(name), signal.SIGTERM, grace_s=15)
        super().close()

    def empty_dictionary(self) -> None:
        with self.db() as conn:
            conn.execute("TRUNCATE dictionary_entries, dictionary_audit_log, dictionary_versions")
        self.checkpoint()


@dataclass
class Run:
    label: str
    entries: int
    seconds: float
    cpu: dict[str, float]
    jobs: dict[str, int] = field(default_factory=dict)
    machine_busy: float = 0.0  # CPU seconds the whole machine worked (any process)
    iowait: float = 0.0  # CPU seconds idle while waiting on the disk

    @property
    def rate(self) -> float:
        return self.entries / self.seconds


def encode(langs: tuple[str, ...], batches: int, size: int, run_id: str) -> dict[str, list[Any]]:
    """Per language, its batches as (request id, body), new headwords each."""
    out: dict[str, list[Any]] = {}
    for index, lang in enumerate(langs):
        entries = make_entries(batches * size, lang=lang, seed=100 + index)
        out[lang] = []
        for seq, part in enumerate(chunks(entries, size)):
            rid = f"scale-{run_id}-{lang}-{seq:04d}"
            out[lang].append((rid, encode_body(batch_payload(rid, lang, part))))
    return out


def run(stack: ScaleStack, label: str, work: dict[str, list[Any]], senders: int) -> Run:
    """Every batch pushed and applied; the clock runs from the first push to the last end."""
    langs = list(work)
    queues = [[b for lang in langs[i::senders] for b in work[lang]] for i in range(senders)]
    failures: list[str] = []

    def sender(items: list[Any]) -> None:
        with httpx.Client(timeout=300) as client, stack.admin_client() as events:
            for rid, body in items:
                accepted = push_body(client, stack.push_url, rid, body)
                wait_events_end(events, str(accepted["jobId"]))
                state = push_status(client, stack.push_url, rid)
                if state["status"] != "success":
                    failures.append(f"{rid}: {state.get('errorMessage')}")
                    return

    jobs_before = {name: stack.jobs_done(name) for name in stack.metrics_ports}
    cpu_before, machine_before = stack.cpu_times(), psutil.cpu_times()
    started = time.monotonic()
    with ThreadPoolExecutor(senders) as pool:
        for future in [pool.submit(sender, q) for q in queues if q]:
            future.result()
    seconds = time.monotonic() - started
    cpu, machine = cpu_used(cpu_before, stack.cpu_times()), psutil.cpu_times()
    idle = machine.idle - machine_before.idle
    iowait = getattr(machine, "iowait", 0.0) - getattr(machine_before, "iowait", 0.0)
    total = sum(machine) - sum(machine_before)
    if failures:
        raise PushFailed(failures[0])
    stack.check_alive()
    jobs = {name: stack.jobs_done(name) - jobs_before.get(name, 0) for name in stack.metrics_ports}
    return Run(label, 0, seconds, cpu, jobs, total - idle - iowait, iowait)


def join_second_worker(stack: ScaleStack, langs: tuple[str, ...], deadline_s: float = 90) -> float:
    """Start worker-2 and push small batches on every scope until both workers apply some:
    the group has rebalanced. Returns the seconds it took."""
    started = time.monotonic()
    stack.start_worker("worker-2")
    before = {name: stack.jobs_done(name) for name in WORKERS}
    with httpx.Client(timeout=60) as client:
        while time.monotonic() - started < deadline_s:
            stack.check_alive()
            for lang in langs:
                rid = f"scale-join-{lang}-{time.time_ns()}"
                body = encode_body(batch_payload(rid, lang, [{lang: "join", "ru": "вход"}]))
                accepted = push_body(client, stack.push_url, rid, body)
                with stack.admin_client() as events:
                    wait_events_end(events, str(accepted["jobId"]))
            if all(stack.jobs_done(name) > before[name] for name in WORKERS):
                return time.monotonic() - started
    raise PushFailed(f"worker-2 took no job within {deadline_s:.0f}s")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=10, help="batches per language")
    parser.add_argument("--batch-size", type=int, default=5_000, help="entries per batch")
    parser.add_argument("--senders", type=int, default=4, help="concurrent sender threads")
    parser.add_argument("--keep", action="store_true", help="keep logs and data afterwards")
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the api and workers (repeatable)",
    )
    args = parser.parse_args(argv)
    if min(args.batches, args.batch_size, args.senders) < 1:
        parser.error("--batches, --batch-size and --senders must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_handler()
    console = Console(width=max(Console().width, 130))
    console.print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    run_id = f"{os.getpid()}-{int(time.time())}"
    load_before = load_average()
    per_run = len(LANGS_ONE) * args.batches * args.batch_size
    with console.status(f"generating 2 x {per_run:,} entries"):
        work_one = encode(LANGS_ONE, args.batches, args.batch_size, run_id)
        work_two = encode(LANGS_TWO, args.batches, args.batch_size, run_id)
    console.print(
        f"per run: {len(LANGS_ONE)} languages x {args.batches} batches x {args.batch_size:,} "
        f"entries = {per_run:,} new entries, {args.senders} senders"
    )
    try:
        with ScaleStack(keep=args.keep, extra_env=service_env(args.service_env)) as stack:
            console.print(
                f"stack up (durable PostgreSQL, broker, api, 1 worker) in {stack.workdir}"
            )
            console.print(f"warm-up batch applied in {warm_up(stack):.1f}s")
            stack.empty_dictionary()
            with console.status("1 worker"):
                one = run(stack, "1 worker", work_one, args.senders)
            one.entries = per_run
            console.print(f"1 worker: {one.rate:,.0f} entries/s")
            with console.status("a second worker joins the group"):
                joined = join_second_worker(stack, LANGS_TWO)
            console.print(f"worker-2 joined and took jobs after {joined:.1f}s")
            stack.empty_dictionary()
            with console.status("2 workers"):
                two = run(stack, "2 workers", work_two, args.senders)
            two.entries = per_run
            console.print(f"2 workers: {two.rate:,.0f} entries/s")
    except KeyboardInterrupt:
        console.print(INTERRUPTED)
        return 130
    console.print(load_line(load_before))
    report(console, args, one, two)
    if not all(two.jobs.get(name, 0) > 0 for name in WORKERS):
        console.print(f"[red]one worker took no job of the 2-worker run: {two.jobs}[/red]")
        return 1
    return 0


PARTS = ("api", *WORKERS, "postgres", "broker", "client")


def report(console: Console, args: argparse.Namespace, one: Run, two: Run) -> None:
    cpus = os.cpu_count() or 1
    table = Table(
        title=f"Scale-out: 4 scopes, batches of {args.batch_size:,}, {args.senders} senders, "
        f"{cpus} CPUs, durable PostgreSQL",
        caption="CPU columns: cores in use on average over the run; 'client': this "
        "process's senders; 'others': every other process on the machine; 'machine': all",
    )
    for column in ("run", "s", "entries/s", "jobs", *PARTS, "others", "machine"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for r in (one, two):
        ours = sum(r.cpu.values())
        table.add_row(
            r.label,
            f"{r.seconds:.1f}",
            f"{r.rate:,.0f}",
            " / ".join(str(r.jobs[n]) for n in WORKERS if n in r.jobs),
            *(f"{r.cpu[n] / r.seconds:.2f}" if n in r.cpu else "-" for n in PARTS),
            f"{max(r.machine_busy - ours, 0) / r.seconds:.2f}",
            f"{r.machine_busy / r.seconds:.2f}",
        )
    console.print(table)
    console.print(f"2 workers / 1 worker: [bold]{two.rate / one.rate:.2f}x[/bold]")
    console.print(bound(one, two, cpus))


def bound(one: Run, two: Run, cpus: int) -> str:
    """What limits the 2-worker run, from where the CPU went."""

    def share(r: Run, *names: str) -> float:
        return sum(r.cpu.get(n, 0) for n in names) / r.seconds

    machine = two.machine_busy / two.seconds
    parts = {
        "PostgreSQL": share(two, "postgres"),
        "the workers": share(two, *WORKERS),
        "the api": share(two, "api"),
        "the broker": share(two, "broker"),
        "the senders (this process)": share(two, "client"),
        "other processes": max(machine - sum(two.cpu.values()) / two.seconds, 0),
    }
    lines = [
        f"1 worker: the worker used {share(one, 'worker'):.2f} cores, PostgreSQL "
        f"{share(one, 'postgres'):.2f}, the api {share(one, 'api'):.2f}.",
        "2 workers: "
        + ", ".join(f"{name} {used:.2f}" for name, used in parts.items())
        + f" cores; the machine was busy {machine:.2f} of {cpus} cores, and "
        f"{two.iowait / two.seconds:.2f} cores waited on the disk.",
    ]
    per_worker = max(share(two, n) for n in WORKERS)
    if per_worker < 0.7:
        lines.append(
            f"No worker is CPU-bound (the busiest used {per_worker:.2f} of a core): a worker "
            "spends most of its time waiting, on PostgreSQL's writes and commits and on "
            "the next request."
        )
    if machine >= 0.85 * cpus:
        top = max(parts.items(), key=lambda item: item[1])[0]
        lines.append(
            f"Bound by CPU: all {cpus} cores are busy, {top} taking the largest share. A "
            "second worker only adds a second PostgreSQL backend competing for the same "
            "cores; it pays off when PostgreSQL has cores to spare (its own machine)."
        )
    else:
        lines.append(
            "The cores are not all busy: the run waits on something else (the durable "
            "PostgreSQL's disk flushes, the broker, or the senders)."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
