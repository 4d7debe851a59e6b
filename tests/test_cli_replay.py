"""``syncbus replay``: dead letters re-driven, request ranges re-published, never applied twice."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_kafka import prefix, push_batch, run
from tests.kafka_tools import read_topic
from tests.stack import Stack
from tests.waiting import wait_for

JOB = (
    "SELECT status, attempt, started_at, finished_at, j.updated_at, created, version "
    "FROM sync_jobs j LEFT JOIN dictionary_versions v ON v.lang = 'en' WHERE request_id = %s"
)


@pytest.fixture
def refused_word(stack: Stack) -> Iterator[str]:
    """A word PostgreSQL refuses to store while the fixture's trigger exists."""
    word = f"refused-{uuid.uuid4().hex[:8]}"
    stack.execute(
        f"""CREATE FUNCTION "refuse_{word}"() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.word = '{word}' THEN RAISE EXCEPTION 'refused by the test'; END IF;
        RETURN NEW; END $$"""
    )
    stack.execute(
        f'CREATE TRIGGER "refuse_{word}" BEFORE INSERT OR UPDATE ON dictionary_entries '
        f'FOR EACH ROW EXECUTE FUNCTION "refuse_{word}"()'
    )
    yield word
    drop_refusal(stack, word)


def drop_refusal(stack: Stack, word: str) -> None:
    stack.execute(f'DROP TRIGGER IF EXISTS "refuse_{word}" ON dictionary_entries')
    stack.execute(f'DROP FUNCTION IF EXISTS "refuse_{word}"()')


def audit_actions(stack: Stack, job_id: str) -> list[str]:
    rows = stack.query("SELECT action FROM audit_log WHERE job_id = %s ORDER BY id", (job_id,))
    return [r[0] for r in rows]


def test_a_dead_lettered_request_is_re_driven_and_completes(
    stack: Stack, refused_word: str, tmp_path: Path
) -> None:
    request_id, job_id = push_batch(stack, [refused_word], status="failed")
    read_topic(
        stack.broker.bootstrap,
        f"{prefix(stack)}dlq",
        until=lambda letters: any(v.get("request_id") == request_id for v in letters),
    )

    dry = run(stack, "replay", "--request-id", request_id, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert (
        f"would send {request_id} to {prefix(stack)}requests.dictionary: job {job_id} failed"
        in (dry.stdout)
    )
    assert stack.query(JOB, (request_id,))[0][:2] == ("failed", 1)  # a dry run changes nothing

    drop_refusal(stack, refused_word)
    result = run(stack, "replay", "--request-id", request_id, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "sent 1, skipped 0"
    wait_for(lambda: stack.query(JOB, (request_id,))[0][0] == "succeeded", what="the re-run")
    assert stack.query(JOB, (request_id,))[0][:2] == ("succeeded", 2)
    assert (
        stack.scalar("SELECT count(*) FROM dictionary_entries WHERE word = %s", (refused_word,))
        == 1
    )
    assert audit_actions(stack, job_id) == ["sync.failed", "sync.replayed", "sync.succeeded"]


def test_replaying_an_applied_request_changes_nothing(stack: Stack, tmp_path: Path) -> None:
    request_id, job_id = push_batch(stack, ["applied-once"])
    before = stack.query(JOB, (request_id,))
    events = stack.scalar("SELECT count(*) FROM sync_events WHERE job_id = %s", (job_id,))
    skipped = f"request {request_id} is succeeded; skipping"
    assert skipped not in stack.log("worker")

    topic = f"{prefix(stack)}requests.dictionary"
    result = run(stack, "replay", "--topic", topic, "--request-id", request_id, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert f"sent {request_id} to {topic}: job {job_id} succeeded: the worker skips it" in (
        result.stdout
    )
    wait_for(lambda: skipped in stack.log("worker"), what="the worker to take the replayed request")
    assert stack.query(JOB, (request_id,)) == before
    assert stack.scalar("SELECT count(*) FROM sync_events WHERE job_id = %s", (job_id,)) == events
    assert audit_actions(stack, job_id) == ["sync.succeeded"]
    assert (
        stack.scalar("SELECT count(*) FROM dictionary_audit_log WHERE word = 'applied-once'") == 1
    )


def test_rerun_is_a_new_job_recorded_as_a_rerun(stack: Stack, tmp_path: Path) -> None:
    request_id, job_id = push_batch(stack, ["ran-twice"])
    topic = f"{prefix(stack)}requests.dictionary"
    located = run(
        stack, "tail", topic, "--from-beginning", "--request-id", request_id, "--json", cwd=tmp_path
    )
    (message,) = [json.loads(line) for line in located.stdout.splitlines()]
    offset, partition = str(message["offset"]), str(message["partition"])

    # An offset range of one partition: exactly that message.
    listed = run(
        stack, "replay", "--topic", "requests.dictionary", "--partition", partition,
        "--from-offset", offset, "--to-offset", offset, "--rerun", "--dry-run", cwd=tmp_path,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("would send ") == 2  # the line, and the count
    assert f"a rerun of {request_id}" in listed.stdout
    assert (
        stack.scalar("SELECT count(*) FROM sync_jobs WHERE params->>'rerun_of' = %s", (request_id,))
        == 0
    )

    result = run(
        stack, "replay", "--topic", topic, "--request-id", request_id, "--rerun", cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    rerun = wait_for(
        lambda: next(
            iter(
                stack.query(
                    "SELECT id, request_id, status, trigger, actor, params FROM sync_jobs "
                    "WHERE params->>'rerun_of' = %s AND status = 'succeeded'",
                    (request_id,),
                )
            ),
            None,
        ),
        what="the rerun to succeed",
    )
    new_id, new_request_id, _status, trigger, actor, params = rerun
    assert new_request_id != request_id and new_request_id.startswith(f"{request_id}-rerun-")
    assert (trigger, actor, params["rerun_of"]) == ("cli", "syncbus replay", request_id)
    assert audit_actions(stack, str(new_id)) == ["sync.rerun", "sync.succeeded"]
    assert stack.query(JOB, (request_id,))[0][:2] == ("succeeded", 1)  # the original is as it was

    view: dict[str, Any] = json.loads(run(stack, "inspect", job_id, "--json", cwd=tmp_path).stdout)
    assert [r["request_id"] for r in view["reruns"]] == [new_request_id]


def test_refused_selections_are_one_line_and_exit_2(stack: Stack, tmp_path: Path) -> None:
    cases = [
        (["--topic", "progress", "--since", "1h"], "--topic must be a request topic"),
        (["--from-offset", "3"], "--from-offset and --to-offset need --topic"),
        (["--topic", "requests.models"], "with --topic, say what:"),
        (["--topic", "nope", "--since", "1h"], "unknown topic 'nope'"),
        (["--until", "soon"], "not a time: 'soon'"),
    ]
    for args, message in cases:
        result = run(stack, "replay", *args, cwd=tmp_path)
        assert result.returncode == 2, (args, result)
        assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
        assert result.stdout == ""
