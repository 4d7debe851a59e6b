"""Seed 004's push route and its failure checklist, against the running service."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import httpx
import pytest

from producers.sender import encode_body, signed_headers
from schemas.signing import push_signature
from streams.domains.dictionary import DIRECT_MAX_ENTRIES
from tests.payloads import batch, entry, signed
from tests.stack import ADMIN_KEY, ADMIN_PIN, OLD_SECRET, SECRET, Stack
from tests.waiting import wait_for


def push(stack: Stack, payload: dict[str, Any], secret: str = SECRET) -> httpx.Response:
    body, headers = signed(payload, secret)
    return httpx.post(stack.push_url, content=body, headers=headers, timeout=30)


def status(stack: Stack, request_id: str) -> dict[str, Any]:
    headers = signed_headers(SECRET, request_id, b"")
    response = httpx.get(
        f"{stack.push_url}/status", params={"requestId": request_id}, headers=headers, timeout=10
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_done(stack: Stack, request_id: str, timeout: float = 30) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        state = status(stack, request_id)
        return state if state["status"] in ("success", "failed") else None

    return wait_for(finished, timeout=timeout, what=f"job {request_id} to finish")


def counts(stack: Stack) -> tuple[int, int, int]:
    return (
        stack.scalar("SELECT count(*) FROM sync_jobs"),
        stack.scalar("SELECT count(*) FROM dictionary_entries"),
        stack.scalar("SELECT count(*) FROM dictionary_audit_log"),
    )


def test_push_is_queued_then_applied_with_audit_and_version(stack: Stack) -> None:
    payload = batch(["apple", "banana"], lang="en")
    version_before = stack.scalar("SELECT version FROM dictionary_versions WHERE lang = 'en'") or 0

    response = push(stack, payload)

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    assert response.json()["requestId"] == payload["requestId"]
    final = wait_done(stack, payload["requestId"])
    assert final["status"] == "success", final
    assert (final["created"], final["updated"], final["entries"]) == (2, 0, 2)
    assert final["version"] == version_before + 1
    row = stack.query(
        "SELECT ru, level, register, frequency_rank, ipa_us FROM dictionary_entries "
        "WHERE lang = 'en' AND word = 'apple'"
    )
    assert row == [("привет", "A0", "разговорная", 1200, "həˈloʊ")]
    audit = stack.query(
        "SELECT action, actor_username, meta->>'source', meta->>'requestId' "
        "FROM dictionary_audit_log WHERE word IN ('apple', 'banana') ORDER BY word"
    )
    assert audit == [("created", "admin_username", "internal_sync", payload["requestId"])] * 2


def test_same_request_id_twice_replays_without_duplicates(stack: Stack) -> None:
    payload = batch(["replay-one", "replay-two"])
    assert push(stack, payload).status_code == 202
    wait_done(stack, payload["requestId"])
    before = counts(stack)

    again = push(stack, payload)

    assert again.status_code == 200, again.text
    assert again.json()["replay"] is True
    assert again.json()["status"] == "success"
    assert counts(stack) == before


def test_the_same_batch_serialised_differently_is_still_a_replay(stack: Stack) -> None:
    payload = batch(["reordered-one", "reordered-two"])
    assert push(stack, payload).status_code == 202
    wait_done(stack, payload["requestId"])
    before = counts(stack)

    reordered = dict(reversed(list(payload.items())))
    body = json.dumps(reordered, indent=2).encode()  # other key order, other whitespace
    headers = signed_headers(SECRET, payload["requestId"], body)
    again = httpx.post(stack.push_url, content=body, headers=headers, timeout=30)

    assert again.status_code == 200, again.text
    assert again.json()["replay"] is True
    assert counts(stack) == before


def test_same_request_id_with_another_payload_is_409_and_writes_nothing(stack: Stack) -> None:
    payload = batch(["conflict-a"])
    assert push(stack, payload).status_code == 202
    wait_done(stack, payload["requestId"])
    before = counts(stack)

    changed = {**payload, "entries": [entry("conflict-b")]}
    response = push(stack, changed)

    assert response.status_code == 409, response.text
    assert "another payload" in response.json()["detail"]
    assert counts(stack) == before


def test_wrong_signature_is_401(stack: Stack) -> None:
    before = counts(stack)
    response = push(stack, batch(["forged"]), secret="not-the-secret")
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid x-sync-signature"
    assert counts(stack) == before


def test_old_timestamp_is_401(stack: Stack) -> None:
    payload = batch(["stale"])
    body = encode_body(payload)
    old = str(int(time.time()) - 301)
    headers = {
        "content-type": "application/json",
        "x-sync-timestamp": old,
        "x-sync-request-id": payload["requestId"],
        "x-sync-signature": push_signature(SECRET, old, payload["requestId"], body),
    }
    response = httpx.post(stack.push_url, content=body, headers=headers)
    assert response.status_code == 401
    assert "allowed window" in response.json()["detail"]


def test_rotated_secret_still_accepted(stack: Stack) -> None:
    payload = batch(["rotated"])
    assert push(stack, payload, secret=OLD_SECRET).status_code == 202
    assert wait_done(stack, payload["requestId"])["status"] == "success"


# A batch below DIRECT_MAX_ENTRIES is applied in one statement; from there on, it is
# staged in temporary tables first. The rules and the outcome must not depend on which.
SIZES = pytest.mark.parametrize("size", ["small", "staged"])


def filler(size: str, name: str) -> list[dict[str, Any]]:
    """Nothing for a small batch; for a staged one, enough further entries to stage it."""
    count = 0 if size == "small" else DIRECT_MAX_ENTRIES
    return [entry(f"{name}-filler-{i}") for i in range(count)]


@SIZES
def test_bad_entry_fails_the_job_with_error_message_and_writes_nothing(
    stack: Stack, size: str
) -> None:
    entries = [entry(f"fine-word-{size}"), entry("broken", frequencyRank="often")]
    payload = batch(entries=entries + filler(size, "bad-entry"))
    response = push(stack, payload)
    assert response.status_code == 202

    final = wait_done(stack, payload["requestId"])

    assert final["status"] == "failed"
    assert final["errorMessage"].startswith("entry 1: 'frequencyRank'")
    fine = "SELECT count(*) FROM dictionary_entries WHERE word = %s"
    assert stack.scalar(fine, (f"fine-word-{size}",)) == 0
    assert (
        stack.scalar(
            "SELECT error_message FROM sync_jobs WHERE request_id = %s", (payload["requestId"],)
        )
        == final["errorMessage"]
    )


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (entry("   "), "entry 1: 'en' must not be empty"),
        (entry("x" * 501), "entry 1: 'en' must be at most 500 characters"),
        (entry("lvl", level="Z9"), "entry 1: 'level' must be one of"),
        (entry("neg", frequencyRank=-1), "entry 1: 'frequencyRank' must be a whole number"),
        (entry("half", frequencyRank=1.5), "entry 1: 'frequencyRank' must be a whole number"),
        (entry("big", frequencyRank=2**31), "entry 1: 'frequencyRank' must be a whole number"),
        (entry("typed", ru=5), "entry 1: 'ru' must be a string"),
        (entry("long", accent="a" * 51), "entry 1: 'accent' must be at most 50 characters"),
    ],
)
def test_each_entry_rule_names_the_entry_and_field(stack: Stack, bad: object, message: str) -> None:
    payload = batch(entries=[entry("valid-first"), bad])  # type: ignore[list-item]
    assert push(stack, payload).status_code == 202
    final = wait_done(stack, payload["requestId"])
    assert final["status"] == "failed"
    assert final["errorMessage"].startswith(message), final["errorMessage"]


@SIZES
def test_a_word_twice_in_one_batch_keeps_the_later_entry(stack: Stack, size: str) -> None:
    more = filler(size, f"twice-{size}")
    entries = [entry(f"twice-{size}", ru="первый"), entry(f"once-{size}")]
    entries += [*more, entry(f" twice-{size} ", ru="второй")]
    payload = batch(entries=entries)
    assert push(stack, payload).status_code == 202
    final = wait_done(stack, payload["requestId"])
    assert final["status"] == "success", final
    assert (final["created"], final["updated"]) == (2 + len(more), 0)
    assert final["entries"] == 3 + len(more)
    word = f"SELECT ru FROM dictionary_entries WHERE word = 'twice-{size}'"
    assert stack.query(word) == [("второй",)]
    audit = "SELECT count(*) FROM dictionary_audit_log WHERE job_id = %s"
    assert stack.scalar(audit, (final["jobId"],)) == 2 + len(more)


@SIZES
def test_the_first_broken_entry_is_named_among_duplicates_and_other_breaks(
    stack: Stack, size: str
) -> None:
    dup = f"dup-{size}"
    entries = [entry(dup), entry(dup), entry("lvl", level="Z9"), entry("typed", ru=5)]
    payload = batch(entries=entries + filler(size, dup))
    assert push(stack, payload).status_code == 202
    final = wait_done(stack, payload["requestId"])
    assert final["status"] == "failed"
    assert final["errorMessage"].startswith("entry 2: 'level' must be one of")
    assert stack.scalar("SELECT count(*) FROM dictionary_entries WHERE word = %s", (dup,)) == 0


@SIZES
def test_entries_are_trimmed_and_unknown_fields_kept(stack: Stack, size: str) -> None:
    spaced = entry(f"  spaced-{size}  ", ru=" мир ", note="from a new worker", tags=[1])
    payload = batch(entries=[spaced, *filler(size, "spaced")])
    assert push(stack, payload).status_code == 202
    assert wait_done(stack, payload["requestId"])["status"] == "success"
    row = stack.query(f"SELECT ru, extra FROM dictionary_entries WHERE word = 'spaced-{size}'")
    assert row == [("мир", {"note": "from a new worker", "tags": [1]})]


def test_missing_headword_fails_the_job(stack: Stack) -> None:
    bad = entry("x")
    del bad["en"]
    payload = batch(entries=[bad])
    assert push(stack, payload).status_code == 202
    final = wait_done(stack, payload["requestId"])
    assert final["status"] == "failed"
    assert "entry 0: 'en'" in final["errorMessage"]


def raw_post(stack: Stack, body: bytes, request_id: str = "raw-1") -> httpx.Response:
    return httpx.post(
        stack.push_url, content=body, headers=signed_headers(SECRET, request_id, body)
    )


@pytest.mark.parametrize(
    ("body", "status_code", "detail"),
    [
        (b'{"requestId": "raw-1", "entries": [', 400, "malformed JSON"),
        (b'["raw-1"]', 400, "JSON object"),
        (
            b'{"requestId":"raw-1","source":"de-ai-worker","lang":"en","entries":"nope"}',
            422,
            "entries",
        ),
        (
            b'{"requestId":"raw-1","source":"de-ai-worker","lang":"English","entries":[{}]}',
            422,
            "lang",
        ),
        (b'{"requestId":"raw-1","source":"de-ai-worker","lang":"en","entries":[]}', 422, "entries"),
        (
            b'{"requestId":"raw-1","source":"de-ai-worker","lang":"en","entries":["hello"]}',
            422,
            "entries.0",
        ),
        (
            b'{"requestId":"raw-1","source":"de-ai-worker","lang":"en",'
            b'"entries":[{"en":"a"},{"en":"b"},[1]]}',
            422,
            "entries.2",
        ),
        (
            b'{"requestId":"other","source":"de-ai-worker","lang":"en","entries":[{"en":"a"}]}',
            400,
            "does not match",
        ),
        (
            b'{"requestId":"raw-1","source":"somebody-else","lang":"en","entries":[{"en":"a"}]}',
            403,
            "source",
        ),
    ],
)
def test_bad_input_gets_a_clear_4xx_and_writes_nothing(
    stack: Stack, body: bytes, status_code: int, detail: str
) -> None:
    before = counts(stack)
    response = raw_post(stack, body)
    assert response.status_code == status_code, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]
    assert counts(stack) == before


def test_missing_signature_headers_are_named(stack: Stack) -> None:
    response = httpx.post(stack.push_url, content=encode_body(batch()))
    assert response.status_code == 401
    assert "x-sync-timestamp" in response.json()["detail"]
    assert "x-sync-signature" in response.json()["detail"]


def test_oversize_body_is_413(stack: Stack) -> None:
    big = batch(entries=[entry(f"w{i}", example="x" * 1000) for i in range(40_000)])
    before = counts(stack)
    response = push(stack, big)
    assert response.status_code == 413
    assert counts(stack) == before


def test_oversize_chunked_body_is_413(stack: Stack) -> None:
    def chunks() -> Any:
        for _ in range(40):
            yield b" " * 1_048_576

    headers = signed_headers(SECRET, "chunky", b"")
    response = httpx.post(stack.push_url, content=chunks(), headers=headers)
    assert response.status_code == 413


def test_status_route_accepts_admin_credentials(stack: Stack) -> None:
    payload = batch(["status-admin"])
    assert push(stack, payload).status_code == 202
    wait_done(stack, payload["requestId"])
    url = f"{stack.push_url}/status"
    params = {"requestId": payload["requestId"]}
    by_key = httpx.get(url, params=params, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    by_pin = httpx.get(url, params=params, headers={"X-Admin-PIN": ADMIN_PIN})
    assert by_key.status_code == by_pin.status_code == 200
    assert by_key.json()["status"] == "success"
    unsigned = httpx.get(url, params=params)
    assert unsigned.status_code == 401
    other = httpx.get(url, params=params, headers=signed_headers(SECRET, "someone-else", b""))
    assert other.status_code == 400
    missing = httpx.get(url, params={"requestId": "never-sent"}, headers={"X-Admin-PIN": ADMIN_PIN})
    assert missing.status_code == 404


def test_stats_route_counts_the_queue_and_needs_admin(stack: Stack) -> None:
    url = f"{stack.url}/api/admin/dictionary/internal-sync/stats"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"X-Admin-PIN": "wrong"}).status_code == 401
    response = httpx.get(url, headers={"X-Admin-PIN": ADMIN_PIN})
    assert response.status_code == 200
    stats = response.json()
    expected = dict(
        stack.query("SELECT status, count(*) FROM internal_dictionary_sync_jobs GROUP BY status")
    )
    assert stats["success"] == expected.get("success", 0)
    assert stats["failed"] == expected.get("failed", 0)
    assert set(stats) == {
        "pending",
        "processing",
        "success",
        "failed",
        "oldestPendingAgeSeconds",
        "oldestProcessingAgeSeconds",
        "failedRecent",
        "recentWindowMinutes",
    }


def test_queued_batches_are_staged_ahead_but_written_in_order(isolated_stack: Stack) -> None:
    """The worker stages the next batch while it writes the current one; the writes must
    still follow the queue: the last batch's value of a word wins, counts stay exact. The
    word flips back and forth, so a batch that compared against a value from before the
    previous batch's commit would count it unchanged and lose the update."""
    stack = isolated_stack
    stack.start_api()  # no worker yet: all four batches wait in the queue
    filler = [entry(f"ahead-filler-{i}") for i in range(2000)]
    values = ["version A", "version B", "version A", "version B"]
    payloads = [batch(entries=[entry("ahead-word", example=v), *filler]) for v in values]
    for payload in payloads:
        assert push(stack, payload).status_code == 202

    stack.start_worker()
    finals = [wait_done(stack, p["requestId"], timeout=60) for p in payloads]

    assert [f["status"] for f in finals] == ["success"] * 4
    assert [(f["created"], f["updated"]) for f in finals] == [(2001, 0)] + [(0, 1)] * 3
    assert stack.scalar("SELECT example FROM dictionary_entries WHERE word = 'ahead-word'") == (
        "version B"
    )
    jobs = stack.query(
        "SELECT started_at, finished_at FROM sync_jobs WHERE domain = 'dictionary' "
        "ORDER BY created_at"
    )
    finished = [f for _, f in jobs]
    assert finished == sorted(finished), "written in the order they were queued"
    assert any(
        later_started < earlier_finished
        for (_, earlier_finished), (later_started, _) in itertools.pairwise(jobs)
    ), "a queued batch was claimed and staged while the one before it was still writing"
