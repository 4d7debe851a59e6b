"""``syncbus tail``: a topic's envelopes, filtered by headers (bodies are never parsed for it)."""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path

from tests.cli_kafka import prefix, produce, push_batch, run, start
from tests.stack import Stack


def headers(request_id: str) -> list[tuple[str, bytes]]:
    return [("request_id", request_id.encode()), ("schema", b"syncbus.progress/v1")]


def test_filters_by_request_id_and_job_from_headers_only(stack: Stack, tmp_path: Path) -> None:
    request_id, job_id = push_batch(stack, ["tailed-1"])
    progress = f"{prefix(stack)}progress"
    mine, other = f"tail-{uuid.uuid4()}", f"tail-{uuid.uuid4()}"
    # Not JSON, but its header matches: printed, and the filter did not need the body.
    produce(stack, progress, b"\xff{not json", key=b"k", headers=headers(mine))
    # Its body names ``mine`` but its header does not: not printed.
    body = json.dumps({"request_id": mine, "schema": {"name": "syncbus.progress", "version": 1}})
    produce(stack, progress, body.encode(), key=b"k", headers=headers(other))

    lines = run(stack, "tail", "progress", "--from-beginning", "--request-id", mine, cwd=tmp_path)
    as_json = run(
        stack, "tail", progress, "--from-beginning", "--request-id", mine, "--json", cwd=tmp_path
    )
    by_job = run(stack, "tail", "progress", "--from-beginning", "--job", job_id, cwd=tmp_path)

    assert lines.returncode == 0, lines.stderr
    assert len(lines.stdout.splitlines()) == 1, lines.stdout
    assert f" {mine} syncbus.progress/v1 (not JSON, 10 bytes)" in lines.stdout
    (record,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert record["headers"] == {"request_id": mine, "schema": "syncbus.progress/v1"}
    assert (record["value"], record["raw"], record["key"]) == (None, "\ufffd{not json", "k")
    assert record["topic"] == progress and record["offset"] >= 0
    events = stack.query(
        "SELECT seq, type FROM sync_events WHERE job_id = %s ORDER BY seq", (job_id,)
    )
    printed = by_job.stdout.splitlines()
    assert len(printed) == len(events), by_job.stdout
    assert all(f" {request_id} syncbus.progress/v1 job={job_id} " in line for line in printed)
    assert [line.split(f"job={job_id} #")[1].split()[:2] for line in printed] == [
        [str(seq), kind] for seq, kind in events
    ]


def test_since_leaves_out_older_messages(stack: Stack, tmp_path: Path) -> None:
    dlq = f"{prefix(stack)}dlq"
    old, new = f"old-{uuid.uuid4()}", f"new-{uuid.uuid4()}"
    two_hours_ago = int(time.time() * 1000) - 2 * 3600 * 1000
    # Shaped like dead letters: other tests read this topic of the shared stack.
    produce(stack, dlq, _letter(old), headers=headers(old), timestamp=two_hours_ago)
    produce(stack, dlq, _letter(new), headers=headers(new))

    recent = run(stack, "tail", "dlq", "--since", "1h", cwd=tmp_path)
    everything = run(stack, "tail", "dlq", "--since", "3h", cwd=tmp_path)

    assert recent.returncode == 0, recent.stderr
    assert new in recent.stdout and old not in recent.stdout
    assert new in everything.stdout and old in everything.stdout


def test_follow_prints_new_messages_until_stopped(stack: Stack, tmp_path: Path) -> None:
    audit = f"{prefix(stack)}audit"
    watched = f"follow-{uuid.uuid4()}"
    produce(stack, audit, b'{"first": 1}', headers=headers(watched))
    follower = start(
        stack, "tail", "audit", "--since", "10m", "--follow", "--request-id", watched, "--json",
        cwd=tmp_path,
    )  # fmt: skip
    try:
        follower.wait_line('"first": 1')  # it has read up to the end and keeps reading
        produce(stack, audit, b'{"second": 2}', headers=headers(watched))
        produce(stack, audit, b'{"third": 3}', headers=headers(f"other-{uuid.uuid4()}"))
        follower.wait_line('"second": 2')
    finally:
        follower.proc.send_signal(signal.SIGTERM)
    assert follower.proc.wait(15) == 0
    assert [json.loads(line)["value"] for line in follower.lines] == [{"first": 1}, {"second": 2}]


def test_topic_names_with_or_without_the_prefix(stack: Stack, tmp_path: Path) -> None:
    marker = f"named-{uuid.uuid4()}"
    produce(stack, f"{prefix(stack)}alerts", _letter(marker), headers=headers(marker))
    for name in ("alerts", f"{prefix(stack)}alerts"):
        result = run(stack, "tail", name, "--request-id", marker, "--last", "1000", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert marker in result.stdout


def test_unknown_topic_or_job_is_one_line_and_exit_2(stack: Stack, tmp_path: Path) -> None:
    unknown = run(stack, "tail", "nope", cwd=tmp_path)
    missing = str(uuid.uuid4())
    no_job = run(stack, "tail", "progress", "--job", missing, cwd=tmp_path)
    bad_job = run(stack, "tail", "progress", "--job", "x", cwd=tmp_path)
    bad_since = run(stack, "tail", "progress", "--since", "yesterday", cwd=tmp_path)

    assert unknown.returncode == 2
    assert unknown.stderr == (
        f"unknown topic 'nope'; the topics are (prefix '{prefix(stack)}') requests.dictionary, "
        "requests.models, requests.saas, requests.git, changes.dictionary, changes.models, "
        "changes.saas, changes.git, progress, audit, dlq, alerts\n"
    )
    assert (no_job.returncode, no_job.stderr) == (2, f"no job {missing}\n")
    assert (bad_job.returncode, bad_job.stderr) == (
        2,
        "not a job id: 'x' (a job's UUID or its number)\n",
    )
    assert bad_since.returncode == 2
    assert bad_since.stderr.startswith("not a time: 'yesterday'")
    assert "" == unknown.stdout == no_job.stdout == bad_job.stdout == bad_since.stdout


def _letter(request_id: str) -> bytes:
    return json.dumps({"request_id": request_id, "reason": "written by test_cli_tail"}).encode()
