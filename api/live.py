"""Live progress: one Kafka consumer per api process, fanned out to SSE subscribers by job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections import defaultdict
from typing import Any

import orjson
from confluent_kafka import (
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from producers.kafka import CLIENT_LOG_LEVEL

log = logging.getLogger(__name__)

# Marks a notice from stored_events rather than a message from the topic.
STORED = "_stored"
# Messages already fetched that one pass hands to the event loop along with the first.
DRAIN = 500


class ProgressHub:
    """Reads the progress topic from its end (no consumer group: no join wait, no commits)."""

    def __init__(self, bootstrap: str, topic: str, fetch_wait_ms: int) -> None:
        self._topic = topic
        self._config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "group.id": f"syncbus-api-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "latest",
            "fetch.wait.max.ms": fetch_wait_ms,
            "fetch.error.backoff.ms": 50,
            "log_level": CLIENT_LOG_LEVEL,
        }
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.assigned = threading.Event()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._consume, name="progress-hub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def subscribe(self, job_id: uuid.UUID) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10_000)
        self._subscribers[str(job_id)].add(queue)
        return queue

    def unsubscribe(self, job_id: uuid.UUID, queue: asyncio.Queue[dict[str, Any]]) -> None:
        queues = self._subscribers.get(str(job_id))
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._subscribers[str(job_id)]

    def watched_jobs(self) -> list[uuid.UUID]:
        """The jobs an SSE stream follows now."""
        return [uuid.UUID(job) for job in self._subscribers]

    def stored(self, job_id: uuid.UUID, seq: int) -> None:
        """PostgreSQL holds ``job_id``'s events up to ``seq``: a stream behind it reads
        them there (api/stored_events.py)."""
        self._dispatch({"job_id": str(job_id), "seq": seq, STORED: True})

    def _dispatch(self, event: dict[str, Any]) -> None:
        for queue in self._subscribers.get(str(event.get("job_id")), ()):
            # A subscriber that fell this far behind catches up from PostgreSQL instead.
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    def _assign(self, consumer: Consumer) -> bool:
        try:
            metadata = consumer.list_topics(self._topic, timeout=2)
        except KafkaException:
            return False  # the broker is away: try again (readyz reports it)
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None or not topic.partitions:
            return False
        consumer.assign([TopicPartition(self._topic, p, OFFSET_END) for p in topic.partitions])
        self.assigned.set()
        return True

    def _consume(self) -> None:
        """Read until stopped. A consumer that fails is replaced a second later: it starts
        at the topic's end, and streams catch up on what it missed from PostgreSQL."""
        while not self._stop.is_set():
            try:
                self._read()
            except Exception:
                log.exception("progress consumer failed; starting a new one")
                self._stop.wait(1.0)

    def _read(self) -> None:
        consumer = Consumer(self._config)
        try:
            while not self._stop.is_set() and not self._assign(consumer):
                self._stop.wait(0.5)
            while not self._stop.is_set():
                first = consumer.poll(0.1)
                if first is None:
                    continue
                # What else has arrived goes over in the same hand-off to the event loop.
                events = self._watched([first, *consumer.consume(DRAIN, 0)])
                if events and self._loop is not None:
                    self._loop.call_soon_threadsafe(self._dispatch_all, events)
        finally:
            consumer.close()

    def _watched(self, messages: list[Message]) -> list[dict[str, Any]]:
        """The events of ``messages`` that a stream follows. The key is the job id, so the
        others are not even decoded (only a message without a key is)."""
        events = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.debug("progress consumer: %s", error)
                continue
            key = message.key()
            if key is not None and key.decode(errors="replace") not in self._subscribers:
                continue
            try:
                event = orjson.loads(message.value() or b"")
            except orjson.JSONDecodeError:
                continue
            if _is_progress(event):
                events.append(event)
        return events

    def _dispatch_all(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self._dispatch(event)


def _is_progress(event: Any) -> bool:
    """The fields a stream reads, of the types it reads them as: anyone may publish to the
    topic, and one odd message must not end the streams of its job."""
    return (
        isinstance(event, dict)
        and isinstance(event.get("job_id"), str)
        and type(event.get("seq")) is int
        and isinstance(event.get("type"), str)
        and isinstance(event.get("data", {}), dict)
    )
