"""Progress over SSE: stored events first, then live; ids on every event; resume; close."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid

from confluent_kafka import Producer

from api.live import ProgressHub
from api.stored_events import check_stored_events
from db.engine import create_engine
from schemas.events import ProgressEvent
from tests.payloads import batch, entry
from tests.sse_client import SseEvent, iter_events, read_all
from tests.stack import Stack
from tests.waiting import wait_for


def submit(stack: Stack, words: int) -> str:
    payload = batch(entries=[entry(f"sse-{i}") for i in range(words)])
    with stack.client() as client:
        response = client.post("/v1/syncs", json={"domain": "dictionary", "payload": payload})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def follow(stack: Stack, job_id: str) -> tuple[threading.Thread, list[SseEvent]]:
    """A thread reading the job's stream until the server closes it, and what it read."""
    received: list[SseEvent] = []

    def read() -> None:
        with (
            stack.client(timeout=60) as client,
            client.stream("GET", f"/v1/syncs/{job_id}/events") as response,
        ):
            received.extend(iter_events(response))

    reader = threading.Thread(target=read)
    reader.start()
    return reader, received


def test_live_job_streams_then_closes_and_resumes_by_last_event_id(isolated_stack: Stack) -> None:
    stack = isolated_stack
    stack.start_api()  # no worker yet: the job waits in the queue while we watch
    job_id = submit(stack, 2500)
    reader, received = follow(stack, job_id)
    wait_for(lambda: received, what="the connected event")
    assert [e.event for e in received] == ["connected"]

    stack.start_worker()
    reader.join(60)
    assert not reader.is_alive(), "the stream did not close after the job finished"

    kinds = [e.event for e in received]
    assert kinds[0] == "connected" and kinds[-1] == "complete"
    assert received[-1].data["success"] is True
    assert received[-1].data["counts"]["created"] == 2500
    ids = [int(e.id or 0) for e in received[1:]]
    assert ids == list(range(1, len(ids) + 1)), "every event has the next id, none missing"
    progress = [e.data for e in received if e.event == "progress"]
    assert [p["processed"] for p in progress] == [2500], "validated and staged in one pass"
    assert all(p["total"] == 2500 for p in progress)
    assert any(e.data.get("message") == "=== Sync Complete ===" for e in received)

    # A finished job replays everything and closes.
    with stack.client() as client:
        replay = read_all(client, f"/v1/syncs/{job_id}/events")
        resumed = read_all(client, f"/v1/syncs/{job_id}/events", headers={"Last-Event-ID": "3"})
    assert [(e.id, e.event, e.data) for e in replay[1:]] == [
        (e.id, e.event, e.data) for e in received[1:]
    ]
    assert resumed[0].event == "connected" and resumed[0].id == "3"
    assert [int(e.id or 0) for e in resumed[1:]] == ids[3:]


def test_events_only_on_the_topic_reach_the_stream_live(isolated_stack: Stack) -> None:
    stack = isolated_stack
    stack.start_api()  # no worker: this test publishes the job's events itself
    job_id = submit(stack, 1)
    reader, received = follow(stack, job_id)
    wait_for(lambda: received, what="the connected event")
    other = uuid.uuid4()  # a job nobody follows, published around the followed one's events
    sent = [
        (other, 1, "log", {"message": "not followed"}),
        (uuid.UUID(job_id), 1, "log", {"message": "from the topic only"}),
        (other, 2, "complete", {"success": True}),
        (uuid.UUID(job_id), 2, "complete", {"success": True}),
    ]
    producer = Producer({"bootstrap.servers": stack.broker.bootstrap})
    topic = f"{stack.env['SYNCBUS_TOPIC_PREFIX']}progress"
    # Anyone may publish to the topic: messages of the followed job that are no progress
    # events must not end its stream.
    for odd in (
        {"job_id": job_id, "seq": None, "type": "log"},
        {"job_id": job_id, "seq": 1},
        {"job_id": job_id, "seq": 1, "type": "log", "data": [1]},
    ):
        producer.produce(topic, json.dumps(odd).encode(), key=job_id)
    for job, seq, kind, data in sent:
        event = ProgressEvent(
            request_id=f"live-{job}", job_id=job, domain="dictionary", seq=seq, type=kind, data=data
        )
        headers: list[tuple[str, str | bytes | None]] = [*event.kafka_headers()]
        producer.produce(topic, event.to_json(), key=str(job), headers=headers)
    assert producer.flush(10) == 0
    reader.join(30)
    assert not reader.is_alive(), "the stream did not end with the complete event of its job"
    assert [(e.id, e.event, e.data) for e in received[1:]] == [
        ("1", "log", {"message": "from the topic only"}),
        ("2", "complete", {"success": True}),
    ]
    assert stack.scalar("SELECT count(*) FROM sync_events") == 0, "none came from PostgreSQL"


def test_a_replayed_jobs_stream_follows_its_new_run(isolated_stack: Stack) -> None:
    """`syncbus replay` puts a failed job back in the queue under its id: its history ends
    with the first run's error, and a stream opened now must follow the new run."""
    stack = isolated_stack
    stack.start_api()  # no worker: the test writes the job's events as a worker does
    job_id = submit(stack, 1)
    insert = "INSERT INTO sync_events (job_id, seq, event_id, type, data) VALUES "
    stack.execute(
        insert + "(%s, 1, gen_random_uuid(), 'log', '{\"message\": \"run 1\"}'), "
        "(%s, 2, gen_random_uuid(), 'error', '{\"success\": false}')",
        (job_id, job_id),
    )
    reader, received = follow(stack, job_id)  # the job is queued again, as replay leaves it
    wait_for(lambda: len(received) >= 3, what="the first run's events")
    stack.execute(
        insert + "(%s, 3, gen_random_uuid(), 'log', '{\"message\": \"run 2\"}'), "
        "(%s, 4, gen_random_uuid(), 'complete', '{\"success\": true}')",
        (job_id, job_id),
    )
    stack.execute("UPDATE sync_jobs SET status = 'succeeded' WHERE id = %s", (job_id,))
    reader.join(30)
    assert not reader.is_alive(), "the stream did not end with the new run's complete event"
    assert [(e.id, e.event) for e in received] == [
        ("0", "connected"),
        ("1", "log"),
        ("2", "error"),
        ("3", "log"),
        ("4", "complete"),
    ]


def test_events_the_topic_never_brought_reach_the_streams_from_postgresql(
    isolated_stack: Stack,
) -> None:
    stack = isolated_stack
    stack.start_api()  # no worker: nothing publishes to the progress topic
    jobs = [submit(stack, 1) for _ in range(3)]
    following = {job: follow(stack, job) for job in jobs}
    readers = [reader for reader, _ in following.values()]
    received = {job: events for job, (_, events) in following.items()}
    wait_for(lambda: all(received.values()), what="every stream connected")
    for job_id in jobs:  # stored as a worker stores them, but never published
        stack.execute(
            "INSERT INTO sync_events (job_id, seq, event_id, type, data) VALUES "
            "(%s, 1, gen_random_uuid(), 'log', '{\"message\": \"stored only\"}'), "
            "(%s, 2, gen_random_uuid(), 'complete', '{\"success\": true}')",
            (job_id, job_id),
        )
    for reader in readers:
        reader.join(30)
        assert not reader.is_alive(), "a stream did not end with its stored complete event"
    for events in received.values():
        assert [(e.id, e.event) for e in events] == [
            ("0", "connected"),
            ("1", "log"),
            ("2", "complete"),
        ]
        assert events[1].data == {"message": "stored only"}


def test_each_look_tells_the_streams_how_far_the_previous_look_found_events(
    isolated_stack: Stack,
) -> None:
    stack = isolated_stack  # no api, no worker: the events are written here
    jobs = [uuid.uuid4() for _ in range(3)]
    two, one, _without_events = jobs
    for job in jobs:
        stack.execute(
            "INSERT INTO sync_jobs (id, request_id, domain, scope, mode, trigger) "
            "VALUES (%s, %s, 'dictionary', 'en', 'incremental', 'api')",
            (job, f"look-{job}"),
        )
    store = "INSERT INTO sync_events (job_id, seq, event_id, type, data) VALUES "
    store += "(%s, %s, gen_random_uuid(), 'log', '{}')"
    for job, seq in ((two, 1), (two, 2), (one, 1)):
        stack.execute(store, (job, seq))

    async def look() -> dict[uuid.UUID, list[int]]:
        engine = create_engine(stack.settings, pool_size=1)
        hub = ProgressHub("127.0.0.1:9", "unused", fetch_wait_ms=10)  # never started
        queues = {job: hub.subscribe(job) for job in jobs}
        try:
            first = await check_stored_events(engine, hub, {})
            assert first == {two: 2, one: 1}, "a job with no events is left out"
            assert all(q.empty() for q in queues.values()), "the first look tells nothing"
            stack.execute(store, (two, 3))  # on its way over Kafka, most likely
            await check_stored_events(engine, hub, first)
        finally:
            await engine.dispose()
        told: dict[uuid.UUID, list[int]] = {}
        for job, queue in queues.items():
            while not queue.empty():
                told.setdefault(job, []).append(queue.get_nowait()["seq"])
        return told

    assert asyncio.run(look()) == {two: [2], one: [1]}


def test_failed_job_stream_ends_with_error(stack: Stack) -> None:
    payload = batch(entries=[entry("good"), entry("bad", level="Z9")])
    with stack.client() as client:
        job_id = client.post("/v1/syncs", json={"domain": "dictionary", "payload": payload}).json()[
            "id"
        ]
        wait_for(
            lambda: client.get(f"/v1/syncs/{job_id}").json()["status"] == "failed", what="failure"
        )
        events = read_all(client, f"/v1/syncs/{job_id}/events")
    assert events[-1].event == "error"
    assert events[-1].data["error"].startswith("entry 1: 'level'")


def test_stream_needs_admin_and_an_existing_job(stack: Stack) -> None:
    with stack.client(admin=False) as client:
        assert (
            client.get("/v1/syncs/00000000-0000-0000-0000-000000000000/events").status_code == 401
        )
    with stack.client() as client:
        missing = client.get("/v1/syncs/00000000-0000-0000-0000-000000000000/events")
    assert missing.status_code == 404
