"""What the README promises and no other test checked: a live stream resumes by id, a batch
that changes nothing keeps the version, updated entries are audited too. (/readyz 503 is in
test_fault_database and test_fault_broker.)"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx
import psycopg

from tests.payloads import batch, entry, signed
from tests.sse_client import SseEvent, iter_events
from tests.stack import SECRET, Stack
from tests.waiting import wait_for


def push_and_wait(stack: Stack, payload: dict[str, Any]) -> dict[str, Any]:
    body, headers = signed(payload, SECRET)
    response = httpx.post(stack.push_url, content=body, headers=headers, timeout=30)
    assert response.status_code == 202, response.text
    status_url = f"{stack.push_url}/status"

    def final() -> dict[str, Any] | None:
        state: dict[str, Any] = (
            stack.client()
            .get(
                status_url,
                params={"requestId": payload["requestId"]},
                headers={"X-Admin-PIN": "test-pin"},
            )
            .json()
        )
        return state if state["status"] in ("success", "failed") else None

    return wait_for(final, what=str(payload["requestId"]))


def headword(lang: str, word: str, **fields: Any) -> dict[str, Any]:
    """A seed-shaped entry whose headword is under the batch's language."""
    item = entry(word, **fields)
    del item["en"]
    return {lang: word, **item}


def version(stack: Stack, lang: str) -> int | None:
    value = stack.scalar("SELECT version FROM dictionary_versions WHERE lang = %s", (lang,))
    return None if value is None else int(value)


def test_unchanged_batch_keeps_the_version_and_updates_are_audited(stack: Stack) -> None:
    lang = "rcl"
    word = f"claim-{uuid.uuid4().hex[:8]}"
    first = push_and_wait(stack, batch(entries=[headword(lang, word, level="A1")], lang=lang))
    assert (first["status"], first["created"], first["version"]) == ("success", 1, 1)

    same = push_and_wait(stack, batch(entries=[headword(lang, word, level="A1")], lang=lang))
    assert (same["created"], same["updated"], same["unchanged"]) == (0, 0, 1)
    assert same["version"] == 1 and version(stack, lang) == 1

    changed = push_and_wait(stack, batch(entries=[headword(lang, word, level="B2")], lang=lang))
    assert (changed["created"], changed["updated"], changed["version"]) == (0, 1, 2)
    actions = stack.query(
        "SELECT action, meta ->> 'source' FROM dictionary_audit_log "
        "WHERE lang = %s AND word = %s ORDER BY id",
        (lang, word),
    )
    assert [a for a, _ in actions] == ["created", "updated"]
    assert {s for _, s in actions} == {"internal_sync"}


def read_events(
    stack: Stack,
    job_id: str,
    into: list[SseEvent],
    last_event_id: str | None = None,
    stop_after: str | None = None,
) -> None:
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    with (
        stack.client(timeout=60) as client,
        client.stream("GET", f"/v1/syncs/{job_id}/events", headers=headers) as response,
    ):
        assert response.status_code == 200
        for event in iter_events(response):
            into.append(event)
            if event.event == stop_after:
                return


def test_last_event_id_resumes_a_live_stream_without_loss_or_repeats(
    isolated_stack: Stack,
) -> None:
    stack = isolated_stack
    stack.start_worker()
    stack.start_api()
    push_and_wait(stack, batch(["resume-warm"]))
    with psycopg.connect(stack.database_url) as blocker:
        # The job stops before its commit, its stream live, until the lock goes.
        blocker.execute("SELECT version FROM dictionary_versions WHERE lang = 'en' FOR UPDATE")
        payload = batch([f"resume-{i}" for i in range(50)])
        with stack.client() as client:
            created = client.post("/v1/syncs", json={"domain": "dictionary", "payload": payload})
        job_id = created.json()["id"]
        first: list[SseEvent] = []
        read_events(stack, job_id, first, stop_after="progress")  # then the client drops
        last_id = first[-1].id
        assert last_id is not None
        assert stack.scalar("SELECT status FROM sync_jobs WHERE id = %s", (job_id,)) == "running"

        second: list[SseEvent] = []
        reader = threading.Thread(target=read_events, args=(stack, job_id, second, last_id))
        reader.start()
        wait_for(lambda: second, what="the resumed stream to connect")
        blocker.rollback()
    reader.join(60)
    assert not reader.is_alive()

    stored = stack.query("SELECT seq FROM sync_events WHERE job_id = %s ORDER BY seq", (job_id,))
    seen = [int(e.id or 0) for e in first + second if e.event != "connected"]
    assert seen == [seq for (seq,) in stored], "every event once, in order"
    resumed = [int(e.id or 0) for e in second if e.event != "connected"]
    assert resumed[0] == int(last_id) + 1 and second[-1].event == "complete"
