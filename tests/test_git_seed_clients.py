"""Seed 002's own clients run against syncbus as written: its Python MetadataSyncClient, its
bash workflow and its curl lines (only host, port, PIN and the example job id differ)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.git_stack import add_release, configure, module_source, repository
from tests.stack import ADMIN_PIN, Stack

SEED = Path(__file__).parent / "fixtures" / "seed002"
EXAMPLE_JOB = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
SEED_LINES = [
    "Starting metadata sync for release: 7.0.0.0",
    "Git branch: master",
    "Acquiring Git lock for branch 'master'",
    "Pulling latest changes from branch 'master'",
    "Discovered 3 tests (0 files failed)",
    "Comparing with existing metadata",
    "Applying updates: 3 new, 0 updated, 0 removed",
    "Added 3/3 new tests",
    "Updated 0/0 tests",
    "Removed 0/0 tests",
    "=== Sync Complete ===",
    "Tests discovered: 3",
    "Tests added: 3",
    "Tests updated: 0",
    "Tests removed: 0",
    "Files failed to parse: 0",
    "Sync completed successfully for 7.0.0.0",
]


@pytest.fixture
def seeded(isolated_stack: Stack, tmp_path: Path) -> Stack:
    files = {"tests/test_smoke.py": module_source("test_a", "test_b", "test_c")}
    remote = repository(tmp_path / "remote", files, branch="master")
    configure(isolated_stack, remote.url, tmp_path)
    isolated_stack.start_worker()
    isolated_stack.start_api()
    assert add_release(isolated_stack, "7.0.0.0", "master") == 1  # the seed's release 1
    return isolated_stack


def as_deployed(text: str, stack: Stack) -> str:
    return text.replace("http://localhost:8000", stack.url).replace("your_pin", ADMIN_PIN)


def run(command: list[str], stack: Stack, cwd: Path) -> str:
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_seeds_python_client(seeded: Stack, tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(as_deployed((SEED / "client.py").read_text(), seeded))
    lines = run([sys.executable, str(script)], seeded, tmp_path).splitlines()
    assert lines[0].startswith("Started job: ")
    assert lines[1] == "  Connected to sync progress stream"
    assert [line.strip() for line in lines[2 : 2 + len(SEED_LINES)]] == SEED_LINES
    assert lines[-2:] == ["Completed: completed", "Last sync: success"]


def test_the_seeds_bash_workflow(seeded: Stack, tmp_path: Path) -> None:
    script = tmp_path / "workflow.sh"
    script.write_text(as_deployed((SEED / "workflow.sh").read_text(), seeded))
    out = run(["bash", str(script)], seeded, tmp_path)
    assert "Triggering sync..." in out and "Monitoring progress..." in out
    data = [json.loads(line[6:]) for line in out.splitlines() if line.startswith("data: ")]
    assert [d["message"] for d in data[1:-1] if "message" in d] == SEED_LINES
    assert data[-1]["status"] == "completed"
    final = json.loads(out.split("Checking final status...", 1)[1])
    assert final["status"] == "success" and final["tests_added"] == 3


def test_the_seeds_curl_lines(seeded: Stack, tmp_path: Path) -> None:
    commands = [c for c in (SEED / "curl.sh").read_text().split("\n\n") if c.strip()]
    trigger_one, trigger_all, progress, status, history, configure_ = (
        as_deployed(c, seeded) for c in commands
    )
    started = json.loads(run(["bash", "-c", trigger_one], seeded, tmp_path))
    assert started["status"] == "started"
    assert started["message"] == "Metadata sync started for release: 7.0.0.0"
    streamed = run(
        ["bash", "-c", progress.replace(EXAMPLE_JOB, started["job_id"])], seeded, tmp_path
    )
    assert "event: complete" in streamed
    everything = json.loads(run(["bash", "-c", trigger_all], seeded, tmp_path))
    assert everything["message"] == "Metadata sync started for all active releases"
    streamed = run(
        ["bash", "-c", progress.replace(EXAMPLE_JOB, everything["job_id"])], seeded, tmp_path
    )
    assert "nothing to do" in streamed, "the branch has not moved since the first sync"
    assert json.loads(run(["bash", "-c", configure_], seeded, tmp_path)) == {
        "message": "Configuration updated successfully"
    }
    state = json.loads(run(["bash", "-c", status], seeded, tmp_path))
    assert (state["enabled"], state["interval_hours"]) == (True, 12.0)
    assert state["next_run"] is not None and "." not in state["next_run"]
    logs = json.loads(run(["bash", "-c", history], seeded, tmp_path))
    assert [entry["id"] for entry in logs] == sorted((e["id"] for e in logs), reverse=True)
    assert len(logs) == 2 and all(entry["status"] == "success" for entry in logs)
