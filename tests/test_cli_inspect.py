"""``syncbus inspect JOB``: the job, its events and audit rows from PostgreSQL in one view."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.cli_kafka import push_batch, run
from tests.stack import Stack


def test_inspect_shows_the_job_its_events_and_its_audit_rows(stack: Stack, tmp_path: Path) -> None:
    request_id, job_id = push_batch(stack, ["inspected-1", "inspected-2"])
    events = stack.query(
        "SELECT seq, type FROM sync_events WHERE job_id = %s ORDER BY seq", (job_id,)
    )
    number = stack.scalar("SELECT number FROM sync_jobs WHERE id = %s", (job_id,))

    result = run(stack, "inspect", job_id, "--json", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    view = json.loads(result.stdout)
    assert view["job"]["id"] == job_id
    assert view["job"]["request_id"] == request_id
    assert (view["job"]["status"], view["job"]["created"]) == ("succeeded", 2)
    assert [(e["seq"], e["type"]) for e in view["events"]] == events
    assert view["events"][-1]["type"] == "complete"
    assert [a["action"] for a in view["audit"]] == ["sync.succeeded"]
    assert view["audit"][0]["data"]["created"] == 2

    table = run(stack, "inspect", str(number), cwd=tmp_path)  # by its number too
    assert table.returncode == 0, table.stderr
    assert job_id in table.stdout
    assert f"events ({len(events)})" in table.stdout
    assert "audit rows (1)" in table.stdout
    assert "sync.succeeded" in table.stdout
    assert "=== Sync Complete ===" in table.stdout


def test_an_unknown_or_malformed_job_is_one_line_and_exit_2(stack: Stack, tmp_path: Path) -> None:
    missing = str(uuid.uuid4())
    for ref, message in [
        (missing, f"no job {missing}"),
        ("999999999999", "no job 999999999999"),
        ("not-a-job", "not a job id: 'not-a-job' (a job's UUID or its number)"),
    ]:
        result = run(stack, "inspect", ref, cwd=tmp_path)
        assert result.returncode == 2, result
        assert result.stdout == ""
        assert result.stderr == message + "\n"
