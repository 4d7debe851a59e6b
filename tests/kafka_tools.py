"""Reading a topic from the start in tests (a plain confluent-kafka consumer)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition


def read_topic(
    bootstrap: str, topic: str, *, until: Any, timeout: float = 20
) -> list[dict[str, Any]]:
    """Consume ``topic`` from the beginning until ``until(values)`` is true or time runs out."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    # Assign instead of subscribing: a group join on the embedded broker is slow.
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    values: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(values):
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            value = orjson.loads(message.value() or b"null")
            headers = dict(message.headers() or [])
            value["_headers"] = {
                k: v.decode() if isinstance(v, bytes) else v for k, v in headers.items()
            }
            values.append(value)
    finally:
        consumer.close()
    return values
