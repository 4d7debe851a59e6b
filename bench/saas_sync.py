"""SaaS sync: a Stripe account of N customers and M subscriptions, synced end to end.

    python bench/saas_sync.py [--customers 200000] [--subscriptions 20000]

The fake Stripe the tests use (``tests/fake_stripe``, Stripe's list, events and error
formats) serves the account from 127.0.0.1; a private syncbus (``bench/harness.py``: durable
embedded PostgreSQL, broker, the real api and worker) has it as app ``bench``. Measured:

1. the limit, in the same run: the same pages fetched with plain httpx, one cursor chain per
   collection as a hand-written script would, and written with one COPY + upsert into a fresh
   table shaped like ``supasaasy.entities``;
2. ``POST /sync`` full, ``immediate: true``, end to end (target: >= 0.7x the limit);
3. 1% of the customers updated and 0.1% deleted at the source (recorded as events), then
   ``POST /sync`` incremental: it must touch only those rows (the table's tuple counters).

It prints rows a second, the HTTP requests made, and the worker's peak memory over its idle
size (target: growth <= 200 MB whatever N). The fake has no rate limit, so neither has the
app (``SYNCBUS_STRIPE_REQUESTS_PER_S``): the comparison is of the code, not of Stripe's pace.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from psycopg.types.json import Jsonb
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # the tests' fake Stripe

from harness import (
    INTERRUPTED,
    BenchStack,
    install_sigterm_handler,
    load_average,
    load_line,
    warm_up,
)

from tests.fake_stripe import FakeStripe

APP = "bench"
FULL_TARGET = 0.7
MEMORY_TARGET_MB = 200


@dataclass
class Measured:
    label: str
    seconds: float
    rows: int
    requests: int
    peak_mb: float | None = None
    counts: dict[str, Any] | None = None


class PeakMemory:
    """Samples a process's resident memory every 50 ms until stopped; the peak over the start."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.start = self._process.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def reference(fake: FakeStripe, database_url: str) -> Measured:
    """The hand-written limit: sequential cursor chains with httpx, one COPY + upsert."""
    started = time.perf_counter()
    before = fake.request_count()
    rows: list[tuple[str, str, dict[str, Any]]] = []
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    with httpx.Client(base_url=fake.base_url, headers=headers, timeout=60) as client:
        for path, collection in (("/v1/customers", "customer"), ("/v1/subscriptions", "sub")):
            params: dict[str, Any] = {"limit": 100}
            if collection == "sub":
                params["status"] = "all"
            while True:
                page = client.get(path, params=params).json()
                for obj in page["data"]:
                    rows.append((collection, obj["id"], obj))
                    for item in (obj.get("items") or {}).get("data", []):
                        rows.append(("item", item["id"], item))
                if not page["has_more"]:
                    break
                params["starting_after"] = page["data"][-1]["id"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS ref_entities")
        conn.execute(
            "CREATE TABLE ref_entities (external_id text, collection_key text, "
            "raw_payload jsonb, updated_at timestamptz DEFAULT now(), "
            "UNIQUE (collection_key, external_id))"
        )
        with conn.transaction():
            conn.execute(
                "CREATE TEMP TABLE ref_stage (external_id text, collection_key text, "
                "raw_payload jsonb) ON COMMIT DROP"
            )
            with conn.cursor().copy(
                "COPY ref_stage (collection_key, external_id, raw_payload) FROM STDIN"
            ) as copy:
                for collection, external_id, obj in rows:
                    copy.write_row((collection, external_id, Jsonb(obj)))
            conn.execute(
                "INSERT INTO ref_entities (external_id, collection_key, raw_payload) "
                "SELECT external_id, collection_key, raw_payload FROM ref_stage "
                "ON CONFLICT (collection_key, external_id) DO UPDATE "
                "SET raw_payload = EXCLUDED.raw_payload, updated_at = now() "
                "WHERE ref_entities.raw_payload IS DISTINCT FROM EXCLUDED.raw_payload"
            )
        conn.execute("DROP TABLE ref_entities")
    return Measured(
        "limit: httpx + COPY + upsert", time.perf_counter() - started, len(rows),
        fake.request_count() - before,
    )  # fmt: skip


def row_versions(stack: BenchStack) -> dict[tuple[str, str], str]:
    """Every entity's row version (``xmin``): a row rewritten by a sync gets a new one."""
    with stack.db() as conn:
        rows = conn.execute(
            "SELECT collection_key, external_id, xmin::text FROM supasaasy.entities"
        ).fetchall()
    return {(c, e): x for c, e, x in rows}


def touched(before: dict[tuple[str, str], str], after: dict[tuple[str, str], str]) -> str:
    rewritten = sum(1 for k, x in after.items() if k in before and before[k] != x)
    return (
        f"{len(after.keys() - before.keys())} inserted, {rewritten} rewritten, "
        f"{len(before.keys() - after.keys())} deleted of {len(before):,} rows"
    )


def timed_sync(stack: BenchStack, fake: FakeStripe, label: str, mode: str) -> Measured:
    worker = stack.procs["worker"]
    before = fake.request_count()
    with stack.admin_client() as client, PeakMemory(worker.pid) as memory:
        started = time.perf_counter()
        body_json = {"app_key": APP, "mode": mode, "immediate": True}
        answer = client.post("/sync", json=body_json, timeout=3600)
        seconds = time.perf_counter() - started
    body = answer.json()
    if answer.status_code != 200 or not body.get("success"):
        raise RuntimeError(f"{label}: HTTP {answer.status_code}: {answer.text[:500]}")
    rows = sum(int(c.get("processed", 0)) for c in body["collections"])
    return Measured(
        label, seconds, rows, fake.request_count() - before, memory.growth_mb,
        {k: body[f"total_{k}"] for k in ("created", "updated", "deleted")},
    )  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--subscriptions", type=int, default=20_000)
    parser.add_argument("--chains", type=int, default=4, help="SYNCBUS_SAAS_PARALLEL_CHAINS")
    parser.add_argument("--keep", action="store_true", help="keep the stack's directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_handler()
    console = Console(width=None if sys.stdout.isatty() else 160)
    command = "python " + shlex.join(["bench/saas_sync.py", *sys.argv[1:]])
    load_before = load_average()
    runs: list[Measured] = []
    try:
        with FakeStripe(seed_fixtures=False) as fake, tempfile.TemporaryDirectory() as tmp:
            with console.status("generating the account"):
                fake.generate("customer", args.customers)
                fake.generate("subscription", args.subscriptions, items_per_subscription=1)
            apps = Path(tmp) / "apps.yaml"
            apps.write_text(
                f"apps:\n  - app_key: {APP}\n    connector: stripe\n"
                f"    api_base: {fake.base_url}\n    resources: [customer, subscription, "
                "subscription_item]\n"
            )
            env = {
                "SYNCBUS_APPS_FILE": str(apps),
                "STRIPE_API_KEY_BENCH": fake.api_key,
                "STRIPE_WEBHOOK_SECRET_BENCH": "whsec_bench",
                "SYNCBUS_STRIPE_REQUESTS_PER_S": "1000000",
                "SYNCBUS_SAAS_PARALLEL_CHAINS": str(args.chains),
                "SYNCBUS_SAAS_IMMEDIATE_WAIT_S": "3600",
                "MODELS_SYNC_CRON": "",
            }
            with BenchStack(keep=args.keep, extra_env=env) as stack:
                console.print(f"warm-up dictionary batch applied in {warm_up(stack):.1f}s")
                with console.status("the limit: httpx + COPY + upsert"):
                    runs.append(reference(fake, stack.database_url))
                stack.checkpoint()
                with console.status("full sync"):
                    runs.append(timed_sync(stack, fake, "syncbus full", "full"))
                stack.checkpoint()
                ids = fake.ids("customer")
                for customer in ids[: len(ids) // 100]:
                    fake.update("customer", customer, description="changed")
                deleted = ids[len(ids) // 100 : len(ids) // 100 + len(ids) // 1000]
                for customer in deleted:
                    fake.delete("customer", customer)
                before = row_versions(stack)
                with console.status("incremental sync"):
                    runs.append(timed_sync(stack, fake, "syncbus incremental", "incremental"))
                changed_rows = touched(before, row_versions(stack))
    except KeyboardInterrupt:
        console.print(INTERRUPTED)
        return 130
    console.print(load_line(load_before))
    report(console, runs, changed_rows, len(ids) // 100, len(deleted))
    console.print(f"[dim]{command}[/dim]")
    limit, full, _ = runs
    ratio = (full.rows / full.seconds) / (limit.rows / limit.seconds)
    return 0 if ratio >= FULL_TARGET and (full.peak_mb or 0) <= MEMORY_TARGET_MB else 2


def report(
    console: Console, runs: list[Measured], changed_rows: str, updated: int, deleted: int
) -> None:
    limit = runs[0]
    table = Table(title="SaaS sync (Stripe) against the hand-written limit")
    for column in ("run", "seconds", "rows", "rows/s", "÷ limit", "requests", "worker peak"):
        table.add_column(column, justify="right" if column != "run" else "left")
    for run in runs:
        rate = run.rows / run.seconds if run.seconds else 0.0
        ratio = rate / (limit.rows / limit.seconds)
        peak = f"+{run.peak_mb:.0f} MB" if run.peak_mb is not None else ""
        versus = f"{ratio:.2f}x" if "incremental" not in run.label else "(changes only)"
        table.add_row(
            run.label, f"{run.seconds:.2f}", f"{run.rows:,}", f"{rate:,.0f}",
            versus, f"{run.requests:,}", peak,
        )  # fmt: skip
    console.print(table)
    full, incremental = runs[1], runs[2]
    console.print(f"full sync counts: {full.counts}; target >= {FULL_TARGET}x the limit, "
                  f"worker growth <= {MEMORY_TARGET_MB} MB")  # fmt: skip
    console.print(
        f"incremental: {incremental.counts} after {updated:,} updates and {deleted:,} deletions "
        f"at the source; rows touched: {changed_rows}"
    )


if __name__ == "__main__":
    sys.exit(main())
