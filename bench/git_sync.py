"""Git metadata sync: a generated repository of 2,000 test files and 20,000 tests, end to end.

    python bench/git_sync.py [--files 2000] [--tests-per-file 10] [--change 0.01]

A private syncbus (``bench/harness.py``: durable embedded PostgreSQL, broker, the real api and
worker) has the repository as ``GIT_REPO_URL`` (file://) and one release on its branch.
Measured, each from ``POST .../trigger/{release_id}`` to the stream's ``complete`` event:

1. the first sync (every file parsed; target <= 3 s);
2. a sync after a commit that rewrites 1% of the files (target <= 0.5 s): only those are
   parsed again, and the counts must be exactly what changed;
3. a sync with no new commit (target <= 0.2 s).

The reference, in the same run: ``pytest --collect-only -q`` over a checkout of the same
tree, the command a user would otherwise run to list these tests (it imports every module).
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # the tests' git helpers

from harness import INTERRUPTED, BenchStack, install_sigterm_handler, load_average, load_line

from tests.git_repos import WorkRepository
from tests.sse_client import iter_events

PIN = {"X-Admin-PIN": "bench-pin"}
TARGETS = {"first sync": 3.0, "1% of the files changed": 0.5, "no new commit": 0.2}


@dataclass
class Measured:
    label: str
    seconds: float
    job_seconds: float
    counts: dict[str, int]
    lines: list[str]
    timings_ms: dict[str, int]


def module(rng: random.Random, number: int, tests: int, variant: int = 0) -> str:
    """A realistic test module: functions, a class, markers, parametrize, docstrings."""
    half = tests // 2
    out = ["import pytest\n\n"]
    for i in range(half):
        parametrized = i % 3 == 0
        if parametrized:
            out.append(f'@pytest.mark.parametrize("value", [1, 2, {variant}])\n')
        if i % 4 == 0:
            out.append("@pytest.mark.slow\n")
        arguments = "value" if parametrized else ""
        out.append(f'def test_f{number}_{i}({arguments}):\n    """Checks case {i}."""\n')
        out.append(f"    assert {rng.randint(0, 9)} >= 0\n\n\n")
    out.append(f"class TestGroup{number}:\n")
    for i in range(tests - half):
        out.append(f"    def test_m{i}_{variant}(self):\n        assert True\n\n")
    return "".join(out)


def generate(path: Path, files: int, per_file: int) -> WorkRepository:
    rng = random.Random(2)
    repo = WorkRepository(path, branch="main")
    repo.write({
        f"suite/pkg_{n % 40:02d}/test_mod_{n:04d}.py": module(rng, n, per_file)
        for n in range(files)
    })  # fmt: skip
    repo.commit("generated suite")
    return repo


def pytest_collect(tree: Path) -> tuple[float, int]:
    """``pytest --collect-only -q`` over the tree: seconds, and node ids it listed."""
    empty_ini = tree / ".bench-empty.ini"
    empty_ini.write_text("[pytest]\n")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-c", str(empty_ini), "--rootdir", str(tree), "suite"],
        cwd=tree, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    empty_ini.unlink()
    listed = sum(1 for line in done.stdout.splitlines() if "::" in line)
    return seconds, listed


def timed_sync(stack: BenchStack, release: int, label: str) -> Measured:
    admin = f"{stack.url}/api/v1/admin/metadata-sync"
    with httpx.Client(headers=PIN, timeout=600) as client:
        started = time.perf_counter()
        answer = client.post(f"{admin}/trigger/{release}")
        answer.raise_for_status()
        job = answer.json()["job_id"]
        with client.stream("GET", f"{admin}/progress/{job}") as stream:
            events = list(iter_events(stream))
        seconds = time.perf_counter() - started
    if events[-1].event != "complete":
        raise RuntimeError(f"{label}: the sync ended with {events[-1]}")
    with stack.db() as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM finished_at - started_at), discovered, created, updated, "
            "deleted, result -> 'releases' -> 0 -> 'timings_ms' FROM sync_jobs WHERE id = %s",
            (job,),
        ).fetchone()
    assert row is not None
    lines = [str(e.data["message"]) for e in events if e.event == "log"]
    counts = dict(zip(("discovered", "created", "updated", "deleted"), row[1:5], strict=True))
    return Measured(label, seconds, float(row[0]), counts, lines, row[5] or {})


def add_release(stack: BenchStack, name: str, branch: str) -> int:
    answer = httpx.post(
        f"{stack.url}/api/v1/admin/releases",
        json={"name": name, "git_branch": branch},
        headers=PIN,
        timeout=30,
    )
    answer.raise_for_status()
    return int(answer.json()["id"])


def change_files(repo: WorkRepository, share: float, files: int, per_file: int) -> int:
    """Rewrite ``share`` of the files: one test renamed in each (one added, one removed)."""
    rng = random.Random(3)
    chosen = sorted(rng.sample(range(files), max(1, round(files * share))))
    repo.write({
        f"suite/pkg_{n % 40:02d}/test_mod_{n:04d}.py": module(random.Random(2), n, per_file, 1)
        for n in chosen
    })  # fmt: skip
    repo.commit("change some files")
    return len(chosen)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--tests-per-file", type=int, default=10)
    parser.add_argument("--change", type=float, default=0.01, help="share of files changed")
    parser.add_argument("--keep", action="store_true", help="keep the stack's directory")
    return parser.parse_args(argv)


def report(console: Console, runs: list[Measured], collect_s: float, listed: int) -> bool:
    table = Table(title="git metadata sync, end to end (trigger to the stream's complete)")
    for column in ("run", "seconds", "in the worker", "tests", "added/updated/removed",
                   "target", "÷ pytest --collect-only"):  # fmt: skip
        table.add_column(column)
    table.add_row("reference: pytest --collect-only -q", f"{collect_s:.2f}", "", f"{listed:,}",
                  "", "", "1.00")  # fmt: skip
    ok = True
    for run in runs:
        target = TARGETS[run.label]
        ok = ok and run.seconds <= target
        c = run.counts
        table.add_row(
            run.label, f"{run.seconds:.3f}", f"{run.job_seconds:.3f}", f"{c['discovered']:,}",
            f"{c['created']}/{c['updated']}/{c['deleted']}", f"<= {target} s",
            f"{run.seconds / collect_s:.3f}",
        )  # fmt: skip
    console.print(table)
    return ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_handler()
    console = Console(width=None if sys.stdout.isatty() else 160)
    command = "python " + shlex.join(["bench/git_sync.py", *sys.argv[1:]])
    load_before = load_average()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with console.status("generating the repository"):
                repo = generate(Path(tmp) / "remote", args.files, args.tests_per_file)
                warm = WorkRepository(Path(tmp) / "warm", branch="warm")
                warm.commit_files({"tests/test_w.py": "def test_w():\n    pass\n"})
            env: dict[str, Any] = {
                "GIT_REPO_URL": repo.url,
                "GIT_REPO_LOCAL_PATH": str(Path(tmp) / "local"),
                "TEST_DISCOVERY_BASE_PATH": "suite",
            }
            with BenchStack(keep=args.keep, extra_env=env) as stack, console.status("syncing"):
                # Warm up: the worker joins its group and loads the domain on a tiny branch.
                subprocess.run(
                    ["git", "push", "--quiet", str(repo.path), "warm:warm"],
                    cwd=warm.path, check=True, capture_output=True,
                )  # fmt: skip
                timed_sync(stack, add_release(stack, "warm", "warm"), "no new commit")
                release = add_release(stack, "7.0.0.0", "main")
                runs = [timed_sync(stack, release, "first sync")]
                changed = change_files(repo, args.change, args.files, args.tests_per_file)
                runs.append(timed_sync(stack, release, "1% of the files changed"))
                runs.append(timed_sync(stack, release, "no new commit"))
            with console.status("pytest --collect-only over the same tree"):
                collect_s, listed = pytest_collect(repo.path)
    except KeyboardInterrupt:
        console.print(INTERRUPTED)
        return 130
    ok = report(console, runs, collect_s, listed)
    console.print(f"{changed} files rewritten for the second sync; {command}")
    console.print(load_line(load_before))
    for run in runs:
        parsed = [line for line in run.lines if line.startswith(("Discovered", "Applying"))]
        phases = ", ".join(f"{k} {v} ms" for k, v in run.timings_ms.items())
        console.print(f"{run.label}: {'; '.join(parsed) or run.lines[-1]} ({phases})")
    return 0 if ok else 2


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
