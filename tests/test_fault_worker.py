"""A worker killed or frozen mid-apply: the job completes once, whoever finishes it."""

from __future__ import annotations

import os
import signal
import uuid
from typing import Any

import httpx
import psycopg

from tests.payloads import batch, signed
from tests.stack import SECRET, Stack
from tests.waiting import wait_for


def push(stack: Stack, payload: dict[str, Any]) -> str:
    body, headers = signed(payload, SECRET)
    response = httpx.post(stack.push_url, content=body, headers=headers, timeout=120)
    assert response.status_code == 202, response.text
    return str(payload["requestId"])


def job(stack: Stack, request_id: str) -> dict[str, Any]:
    rows = stack.query(
        "SELECT id, status, attempt, created, updated FROM sync_jobs WHERE request_id = %s",
        (request_id,),
    )
    assert len(rows) == 1
    return dict(zip(("id", "status", "attempt", "created", "updated"), rows[0], strict=True))


def backends_waiting(stack: Stack, query_like: str, wait_type: str | None = None) -> bool:
    sql = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND state = 'active' AND query ILIKE %s"
    )
    params: tuple[Any, ...] = (query_like,)
    if wait_type is not None:
        sql += " AND wait_event_type = %s"
        params += (wait_type,)
    return bool(stack.scalar(sql, params))


def once_each(stack: Stack, job_id: uuid.UUID) -> tuple[int, int, int]:
    """The job's dictionary audit rows, `complete` events and core audit rows."""
    return (
        stack.scalar("SELECT count(*) FROM dictionary_audit_log WHERE job_id = %s", (job_id,)),
        stack.scalar(
            "SELECT count(*) FROM sync_events WHERE job_id = %s AND type = 'complete'", (job_id,)
        ),
        stack.scalar("SELECT count(*) FROM audit_log WHERE job_id = %s", (job_id,)),
    )


def test_worker_killed_mid_apply_of_200k_entries(isolated_stack: Stack) -> None:
    stack = isolated_stack
    stack.env_overrides.update(
        {
            "SYNCBUS_DICTIONARY_MAX_ENTRIES": "200000",
            "SYNCBUS_DICTIONARY_MAX_BODY_BYTES": str(64 * 1024 * 1024),
            "SYNCBUS_JOB_STALE_AFTER_S": "3",
        }
    )
    stack.start_worker()
    stack.start_api()
    entries = [{"en": f"kill-{i}", "ru": f"убить-{i}"} for i in range(200_000)]
    request_id = push(stack, batch(entries=entries))

    wait_for(
        lambda: backends_waiting(stack, "%INSERT INTO%dictionary_entries%"),
        timeout=90,
        interval=0.01,
        what="the worker to write the batch",
    )
    stack.stop("worker", signal.SIGKILL)
    assert job(stack, request_id)["status"] == "running"
    assert stack.scalar("SELECT count(*) FROM dictionary_entries") == 0, "nothing half-written"

    stack.start_worker("worker-2")
    wait_for(lambda: job(stack, request_id)["status"] == "succeeded", timeout=120, what="job")
    final = job(stack, request_id)
    assert (final["created"], final["updated"]) == (200_000, 0)
    assert final["attempt"] == 2
    assert once_each(stack, final["id"]) == (200_000, 1, 1)
    assert stack.scalar("SELECT count(*) FROM dictionary_audit_log") == 200_000
    assert stack.scalar("SELECT version FROM dictionary_versions WHERE lang = 'en'") == 1


def test_stale_attempt_cannot_commit_after_its_job_was_requeued(isolated_stack: Stack) -> None:
    stack = isolated_stack
    stack.env_overrides["SYNCBUS_JOB_STALE_AFTER_S"] = "3"
    first = stack.start_worker("worker-a")
    stack.start_api()
    warm = push(stack, batch(["stale-warm"]))
    wait_for(lambda: job(stack, warm)["status"] == "succeeded", timeout=60, what="warm-up")

    words = ["stale-1", "stale-2", "stale-3"]
    with psycopg.connect(stack.database_url) as blocker:
        # Holds the language's version row: attempt 1 writes its entries and audit rows,
        # then waits here, inside its transaction.
        blocker.execute("SELECT version FROM dictionary_versions WHERE lang = 'en' FOR UPDATE")
        request_id = push(stack, batch(words))
        wait_for(
            lambda: backends_waiting(stack, "%dictionary_versions%", "Lock"),
            timeout=60,
            what="attempt 1 to wait for the version row",
        )
        os.kill(first.pid, signal.SIGSTOP)  # frozen: no heartbeat, its transaction open
        try:
            stack.start_worker("worker-b")
            wait_for(lambda: job(stack, request_id)["attempt"] == 2, timeout=60, what="requeue")
            blocker.rollback()  # attempt 1's statement completes; its commit never comes
            wait_for(
                lambda: backends_waiting(stack, "%dictionary%", "Lock"),
                timeout=60,
                what="attempt 2 to wait for attempt 1's rows",
            )
        finally:
            os.kill(first.pid, signal.SIGCONT)

    def logs() -> str:
        return "\n".join(f"--- {w} ---\n{stack.log(w)[-1500:]}" for w in ("worker-a", "worker-b"))

    try:
        wait_for(lambda: job(stack, request_id)["status"] == "succeeded", timeout=60, what="job")
    except AssertionError as exc:  # what the workers did says why
        raise AssertionError(f"{exc}\n{job(stack, request_id)}\n{logs()}") from None
    final = job(stack, request_id)
    assert (final["attempt"], final["created"], final["updated"]) == (2, 3, 0), f"{final}\n{logs()}"
    assert once_each(stack, final["id"]) == (3, 1, 1)
    assert stack.scalar("SELECT version FROM dictionary_versions WHERE lang = 'en'") == 2
    wait_for(lambda: "was superseded" in stack.log("worker-a"), what="attempt 1 to give up")
