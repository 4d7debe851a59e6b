"""Group commit: a language's queued batches are applied in one transaction, each its own job."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db import claims, jobs
from db.claims import Candidate, GroupLimits, pick_group
from db.engine import create_engine
from schemas.events import SyncRequest
from schemas.settings import Settings
from tests.kafka_tools import read_topic
from tests.payloads import batch, entry
from tests.stack import Stack
from tests.test_dictionary_push import push, wait_done
from tests.waiting import wait_for


def test_queued_batches_of_a_language_apply_together_and_a_bad_one_fails_alone(
    isolated_stack: Stack,
) -> None:
    stack = isolated_stack
    stack.start_api()  # no worker yet: every batch waits in the queue
    en = [batch(entries=[entry("flip", example=f"en-{i}"), entry(f"only-{i}")]) for i in range(6)]
    en[3] = batch(entries=[entry("flip", example="bad"), entry("broken", frequencyRank="often")])
    de = batch(lang="de", entries=[{"de": "eins", "ru": "один"}, {"de": "zwei", "ru": "два"}])
    for payload in [*en[:2], de, *en[2:]]:
        assert push(stack, payload).status_code == 202

    stack.start_worker()
    finals = {p["requestId"]: wait_done(stack, p["requestId"], timeout=60) for p in [*en, de]}

    good = [p["requestId"] for i, p in enumerate(en) if i != 3]
    bad = en[3]["requestId"]
    assert [finals[r]["status"] for r in good] == ["success"] * 5
    assert finals[bad]["status"] == "failed"
    assert finals[de["requestId"]]["status"] == "success"
    assert finals[bad]["errorMessage"].startswith("entry 1: 'frequencyRank'")
    # Each good batch is its own job: its own counts and version, in the order pushed.
    assert [(finals[r]["created"], finals[r]["updated"]) for r in good] == [(2, 0)] + [(1, 1)] * 4
    jobs = {
        row[0]: row[1:]
        for row in stack.query("SELECT request_id, id, (result ->> 'version')::int FROM sync_jobs")
    }
    assert [jobs[r][1] for r in good] == [1, 2, 3, 4, 5]
    assert stack.scalar("SELECT example FROM dictionary_entries WHERE word = 'flip'") == "en-5"
    assert stack.scalar("SELECT count(*) FROM dictionary_entries WHERE word = 'broken'") == 0
    # ...its own audit rows, one audit event and one final stream event.
    for request_id in [*good, bad]:
        job_id = jobs[request_id][0]
        audit_rows = stack.scalar(
            "SELECT count(*) FROM dictionary_audit_log WHERE job_id = %s", (job_id,)
        )
        assert audit_rows == (0 if request_id == bad else 2)
        finals_seen = stack.query(
            "SELECT type FROM sync_events WHERE job_id = %s AND type IN ('complete', 'error')",
            (job_id,),
        )
        assert finals_seen == [("error",) if request_id == bad else ("complete",)]
        assert stack.scalar("SELECT count(*) FROM audit_log WHERE job_id = %s", (job_id,)) == 1
    # One transaction wrote every English job's outcome, the failed one's too; German is
    # another scope, applied on its own. The worker logs and counts a group after its
    # commit and its dead letter's ack, a moment after the rows say the jobs ended.
    wait_for(
        lambda: "applied 6 jobs of scope en in one transaction" in stack.log("worker"),
        timeout=10,
        what="the English group's log line",
    )
    one_each = 'syncbus_jobs_per_transaction_bucket{domain="dictionary",le="8.0"} 2.0'
    wait_for(
        lambda: one_each in httpx.get(stack.metrics_url()).text,
        timeout=10,
        what="one transaction for the English batches, one for the German one",
    )
    letters = read_topic(
        stack.broker.bootstrap,
        f"t{stack.name}.dlq",
        until=lambda values: any(v["request_id"] == bad for v in values),
    )
    ours = {p["requestId"] for p in [*en, de]}
    dead = [v["request_id"] for v in letters if v["request_id"] in ours]
    assert dead == [bad], "only the bad batch is dead-lettered"


def ids(n: int) -> list[uuid.UUID]:
    return [uuid.UUID(int=i + 1) for i in range(n)]


def job(id_: uuid.UUID, number: int, status: str, entries: int = 10) -> Candidate:
    return Candidate(id_, number, status, 1, entries)


def test_a_group_takes_earlier_queued_jobs_first_and_stops_at_a_running_one() -> None:
    a, b, c, d, e = ids(5)
    active = [
        job(a, 1, "queued"),  # accepted before: its message is late
        job(b, 2, "running"),  # this worker runs it (its apply comes first)
        job(c, 3, "queued"),  # this request's own job
        job(d, 4, "running"),  # the run ends here...
        job(e, 5, "queued"),  # ...so this one waits for its own turn
    ]
    here = {b, d}
    assert pick_group(active, c, GroupLimits(), here=here) == [a, c]
    assert pick_group(active, e, GroupLimits(), here=here) == [a, c, e]
    assert pick_group(active, b, GroupLimits(), here=here) == [], "running here already"


def test_a_job_of_a_dead_worker_goes_first_and_a_live_one_is_waited_for() -> None:
    a, b, c = ids(3)
    active = [job(a, 1, "running"), job(b, 2, "running"), job(c, 3, "queued")]
    # Both earlier jobs were running on a worker that died: taken over, in order.
    assert pick_group(active, c, GroupLimits(), dead={a, b}) == [a, b, c]
    assert pick_group(active, b, GroupLimits(), dead={a, b}) == [a, b, c]
    # One of them runs on a live worker elsewhere: wait for it (None), do not overtake.
    assert pick_group(active, c, GroupLimits(), dead={a}) is None
    assert pick_group(active, b, GroupLimits(), dead={a}) is None, "the own job, live elsewhere"
    assert pick_group(active, uuid.UUID(int=99), GroupLimits()) == [], "the job ended"


def test_a_group_is_capped_by_jobs_and_entries_but_never_empty() -> None:
    a, b, c, d = ids(4)
    active = [job(j, n, "queued", 1000) for n, j in enumerate([a, b, c, d], 1)]
    assert pick_group(active, b, GroupLimits(max_jobs=2)) == [a, b]
    assert pick_group(active, a, GroupLimits(max_entries=2500)) == [a, b]
    # Earlier jobs over the cap leave the request's own job for the next group.
    assert pick_group(active, c, GroupLimits(max_jobs=2)) == [a, b]
    big = [job(a, 1, "queued", 50_000), job(b, 2, "queued")]
    assert pick_group(big, a, GroupLimits(max_entries=20_000)) == [a], "a big batch goes alone"


def test_a_blocked_group_still_streams_each_jobs_events(isolated_stack: Stack) -> None:
    """A group's events do not wait for its commit: while the group waits on a lock, each
    job's progress is already stored (what SSE clients replay and see live)."""
    stack = isolated_stack
    stack.start_api()
    stack.execute("INSERT INTO dictionary_versions (lang, version) VALUES ('en', 0)")
    payloads = [batch([f"blocked-{i}-{n}" for n in range(3)]) for i in range(3)]
    with psycopg.connect(stack.database_url) as blocker:
        blocker.execute("SELECT version FROM dictionary_versions WHERE lang = 'en' FOR UPDATE")
        for payload in payloads:
            assert push(stack, payload).status_code == 202
        stack.start_worker()
        request_ids = [p["requestId"] for p in payloads]

        def progress_stored_while_running() -> bool:
            rows = stack.query(
                "SELECT j.status, count(e.*) FILTER (WHERE e.type = 'progress') "
                "FROM sync_jobs j LEFT JOIN sync_events e ON e.job_id = j.id "
                "WHERE j.request_id = ANY(%s) GROUP BY j.id",
                (request_ids,),
            )
            return len(rows) == 3 and all(row == ("running", 1) for row in rows)

        wait_for(progress_stored_while_running, timeout=30, what="each job's progress, live")
        blocker.rollback()
    finals = [wait_done(stack, r, timeout=30) for r in request_ids]
    assert [f["status"] for f in finals] == ["success"] * 3
    wait_for(
        lambda: "applied 3 jobs of scope en in one transaction" in stack.log("worker"),
        timeout=10,
        what="the group's log line (written after its commit)",
    )


def test_a_claimed_attempt_numbers_its_events_after_the_earlier_attempts(stack: Stack) -> None:
    """An attempt's events go on after those its earlier attempts committed (a stream
    client resumes by sequence number; a number used twice would drop the later event),
    also those committed while the takeover waited for the job's row."""

    async def go() -> tuple[int, int]:
        engine = create_engine(Settings(DATABASE_URL=stack.database_url))
        job_id = uuid.uuid4()
        try:
            async with engine.begin() as conn:
                request = SyncRequest(request_id=f"seq-{uuid.uuid4()}", domain="dictionary")
                await jobs.insert_job(conn, request, job_id=job_id, payload_sha256=None, body=None)
                (first,) = await claims.claim_ids(conn, [job_id])
                await add_events(conn, job_id, [1, 2, 3])
            async with engine.connect() as old, engine.connect() as new:
                # The first attempt, still alive, holds its row while it writes events 4-5...
                await old.execute(
                    text("UPDATE sync_jobs SET heartbeat_at = now() WHERE id = :id"),
                    {"id": job_id},
                )
                await add_events(old, job_id, [4, 5])
                new_pid = (await new.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                takeover = asyncio.create_task(claims.take_over(new, job_id, first["attempt"]))
                await wait_for_lock(engine, new_pid, takeover)
                await old.commit()  # ...and commits them while the takeover waits.
                second = await asyncio.wait_for(takeover, 20)
                assert second is not None and second["attempt"] == 2
                await new.rollback()
            return int(first["next_seq"]), int(second["next_seq"])
        finally:
            async with engine.begin() as conn:
                await conn.execute(text("DELETE FROM sync_jobs WHERE id = :id"), {"id": job_id})
            await engine.dispose()

    assert asyncio.run(go()) == (1, 6)


async def add_events(conn: AsyncConnection, job_id: uuid.UUID, seqs: list[int]) -> None:
    for seq in seqs:
        await conn.execute(
            text(
                "INSERT INTO sync_events (job_id, seq, event_id, type, data) "
                "VALUES (:job, :seq, :event, 'log', '{}')"
            ),
            {"job": job_id, "seq": seq, "event": uuid.uuid4()},
        )


async def wait_for_lock(engine: AsyncEngine, pid: int, task: asyncio.Task[object]) -> None:
    """Until backend ``pid`` waits on a lock (``task`` must not end first)."""
    deadline = asyncio.get_running_loop().time() + 20
    query = text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid")
    while True:
        async with engine.connect() as conn:
            if (await conn.execute(query, {"pid": pid})).scalar() == "Lock":
                return
        assert not task.done(), "the takeover did not wait for the row"
        assert asyncio.get_running_loop().time() < deadline, "no lock wait seen"
        await asyncio.sleep(0.01)
