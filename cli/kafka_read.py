"""Reading syncbus topics from the CLI: topic names, true end offsets, bounded or followed reads.

Only standard Kafka requests, and never a consumer-group join (it waits about the session
timeout on the embedded broker): partitions are assigned by hand, nothing is committed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from producers.kafka import CLIENT_LOG_LEVEL
from schemas.settings import Settings
from schemas.topics import Topics

TP = tuple[str, int]
# How long a metadata request or an offset lookup may take before the broker counts as away.
REQUEST_TIMEOUT_S = 10.0


class KafkaProblem(Exception):
    """A one-line reason the command cannot go on (unknown topic, broker away)."""


@dataclass(frozen=True)
class Record:
    """One message as read; the value is left as bytes (filters never parse it)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name and value is not None:
                return value.decode("utf-8", errors="replace")
        return None


def consumer_config(settings: Settings) -> dict[str, Any]:
    """A consumer that is assigned partitions and commits nothing (so joins no group)."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        # librdkafka wants a group id; with assign() and no commit the broker never sees it.
        "group.id": f"syncbus-cli-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": settings.kafka_fetch_wait_ms,
        "log_level": CLIENT_LOG_LEVEL,
    }


def resolve_topic(topics: Topics, name: str) -> str:
    """``name`` as one of the syncbus topics, with or without the prefix."""
    known = topics.all()
    matches = {t for t in known if t in (name, topics.prefix + name)}
    if len(matches) == 1:
        return matches.pop()
    if matches:
        raise KafkaProblem(f"ambiguous topic {name!r}: it could be {', '.join(sorted(matches))}")
    short = ", ".join(t.removeprefix(topics.prefix) for t in known)
    raise KafkaProblem(f"unknown topic {name!r}; the topics are (prefix {topics.prefix!r}) {short}")


def open_consumer(settings: Settings) -> tuple[Consumer, dict[str, list[int]]]:
    """A consumer and the partitions of every topic the broker has; KafkaProblem if away."""
    consumer = Consumer(consumer_config(settings))
    try:
        metadata = consumer.list_topics(timeout=REQUEST_TIMEOUT_S)
    except KafkaException as exc:
        consumer.close()
        raise KafkaProblem(
            f"cannot reach the Kafka broker at {settings.kafka_bootstrap_servers} "
            f"(KAFKA_BOOTSTRAP_SERVERS): {_reason(exc)}"
        ) from None
    partitions = {
        name: sorted(meta.partitions)
        for name, meta in metadata.topics.items()
        if meta.error is None and meta.partitions
    }
    return consumer, partitions


def watermarks(consumer: Consumer, tps: list[TP]) -> dict[TP, tuple[int, int]]:
    """Low and high watermarks, the high one confirmed by a fetch (see ``_confirm_ends``)."""
    marks: dict[TP, tuple[int, int]] = {}
    for topic, partition in tps:
        try:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=REQUEST_TIMEOUT_S
            )
        except KafkaException as exc:
            raise KafkaProblem(f"cannot list offsets of {topic}: {_reason(exc)}") from None
        marks[(topic, partition)] = (low, high)
    ends = _confirm_ends(consumer, {tp: high for tp, (low, high) in marks.items() if high > low})
    return {tp: (low, max(high, ends.get(tp, high))) for tp, (low, high) in marks.items()}


def _confirm_ends(consumer: Consumer, listed: dict[TP, int]) -> dict[TP, int]:
    """The end of each partition as a fetch reports it, read from its last listed message.

    The embedded broker (Tansu 0.6) answers ListOffsets(latest) with the last record
    batch's base offset + 1: a batch of several records leaves its tail past the "end".
    Its fetch responses are right, so read from the listed end - 1 to the end of the
    partition. On Apache Kafka that reads one message per partition and changes nothing.
    """
    if not listed:
        return {}
    ends = dict(listed)
    consumer.assign([TopicPartition(t, p, high - 1) for (t, p), high in listed.items()])
    waiting = set(listed)
    deadline = time.monotonic() + REQUEST_TIMEOUT_S
    try:
        while waiting and time.monotonic() < deadline:
            message = consumer.poll(0.1)
            if message is None:
                continue
            tp = (str(message.topic()), int(message.partition() or 0))
            error = message.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                ends[tp] = max(ends.get(tp, 0), int(message.offset() or 0))
                waiting.discard(tp)
            elif error is None and tp in ends:
                ends[tp] = max(ends[tp], int(message.offset() or 0) + 1)
    finally:
        consumer.unassign()
    return ends


def start_offsets_since(consumer: Consumer, tps: list[TP], since_ms: int) -> dict[TP, int]:
    """The first offset at or after ``since_ms`` per partition, -1 where there is none.

    Tansu 0.6 answers every timestamp lookup with the partition's start, so callers also
    filter by each message's timestamp: the lookup only saves reading on Apache Kafka.
    """
    asked = [TopicPartition(t, p, since_ms) for t, p in tps]
    try:
        found = consumer.offsets_for_times(asked, timeout=REQUEST_TIMEOUT_S)
    except KafkaException:
        return {tp: 0 for tp in tps}  # read everything; the timestamp filter decides
    return {(f.topic, f.partition): f.offset for f in found}


def read(
    consumer: Consumer,
    starts: dict[TP, int],
    ends: dict[TP, int] | None,
    *,
    stop: Callable[[], bool] = lambda: False,
    on_progress: Callable[[TP, int], None] | None = None,
) -> Iterator[Record]:
    """Messages from ``starts`` up to (not including) ``ends``, or on and on without ends.

    Per partition order is kept; partitions interleave as the broker answers.
    """
    if ends is not None:
        starts = {tp: off for tp, off in starts.items() if 0 <= off < ends[tp]}
        if not starts:
            return
    pending = set(starts)
    consumer.assign([TopicPartition(t, p, off) for (t, p), off in starts.items()])
    try:
        while not stop() and (ends is None or pending):
            message = consumer.poll(0.2)
            if message is None:
                continue
            tp = (str(message.topic()), int(message.partition() or 0))
            offset = int(message.offset() or 0)
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    if ends is not None and offset >= ends[tp]:
                        pending.discard(tp)
                    continue
                if error.fatal():
                    raise KafkaProblem(f"reading {tp[0]}: {error.str()}")
                continue
            if ends is not None:
                if tp not in pending or offset >= ends[tp]:
                    pending.discard(tp)
                    continue
                if offset + 1 >= ends[tp]:
                    pending.discard(tp)
            if on_progress is not None:
                on_progress(tp, offset)
            yield _record(message)
    finally:
        consumer.unassign()


def _record(message: Message) -> Record:
    kind, stamp = message.timestamp()
    return Record(
        topic=str(message.topic()),
        partition=int(message.partition() or 0),
        offset=int(message.offset() or 0),
        timestamp_ms=stamp if kind != 0 and stamp >= 0 else None,  # 0: TIMESTAMP_NOT_AVAILABLE
        key=_bytes(message.key()),
        value=_bytes(message.value()),
        headers=[(k, _bytes(v)) for k, v in _header_list(message)],
    )


def _bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _header_list(message: Message) -> list[tuple[str, str | bytes | None]]:
    headers = message.headers()
    return list(headers.items()) if isinstance(headers, dict) else list(headers or [])


def _reason(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)
