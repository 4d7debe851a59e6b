"""A confluent-kafka producer usable from asyncio, and topic creation."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from producers.quiet import Quiet
from schemas.events import KafkaHeaders

log = logging.getLogger(__name__)


# librdkafka's own log goes to stderr: at its error level (3) that is a line per refused
# connection, several a second per client while the broker is away. Keep critical ones only;
# syncbus says itself, once, that the broker is unreachable (readyz, the relay, the worker).
CLIENT_LOG_LEVEL = 2
# How long a message may wait for the broker's acknowledgement before its send fails.
DELIVERY_TIMEOUT_S = 15.0


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """Defaults for low latency, in-order delivery and survival of a broker restart.

    Idempotence stays off: every consumer is idempotent by request or event id, and a broker
    that restarts with no memory (the embedded one) answers UnknownProducerId forever to an
    idempotent producer. One request in flight keeps retries in order. No linger: a
    message goes out at once (an accepted request waits for its ack on the way to the
    worker), and messages produced while a request is in flight still leave as one batch.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": False,
        "max.in.flight.requests.per.connection": 1,
        "acks": "all",
        "linger.ms": 0,
        "message.timeout.ms": int(DELIVERY_TIMEOUT_S * 1000),
        "socket.keepalive.enable": True,
        "reconnect.backoff.max.ms": 1000,
        "log_level": CLIENT_LOG_LEVEL,
    }
    config.update(overrides)
    return config


class AsyncProducer:
    """Wraps ``confluent_kafka.Producer``; a background thread serves delivery callbacks."""

    def __init__(self, bootstrap: str, **overrides: Any) -> None:
        self._producer = Producer(producer_config(bootstrap, **overrides))
        # Delivery reports of send_nowait arrive on the poll thread only; its refusals
        # on the caller's: one Quiet per thread and kind.
        self._events = Quiet(log, "publishing events", then="dropped")
        self._queue_full = Quiet(log, "publishing events (queue full)", then="dropped")
        self._refused = Quiet(log, "publishing events (refused)", then="dropped")
        self._running = True
        self._thread = threading.Thread(target=self._poll, name="kafka-producer", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while self._running:
            self._producer.poll(0.05)

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: str | None = None,
        headers: KafkaHeaders | None = None,
    ) -> None:
        """Publish and wait for the broker's acknowledgement."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                loop.call_soon_threadsafe(_settle, done, None)
            else:
                loop.call_soon_threadsafe(_settle, done, KafkaException(err))

        self._produce(topic, value, key, headers, on_delivery)
        await done

    def send_nowait(
        self,
        topic: str,
        value: bytes,
        *,
        key: str | None = None,
        headers: KafkaHeaders | None = None,
    ) -> None:
        """Publish without waiting, never raising (progress, audit and change events:
        PostgreSQL already holds them). Like a delivery that times out, a message the
        producer refuses (its queue full, the message too large) is logged and dropped."""

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                self._events.failed(f"to {topic}: {err.str()}")
            else:
                self._events.succeeded()

        try:
            self._producer.produce(
                topic, value, key=key, headers=_wire(headers), on_delivery=on_delivery
            )
        except BufferError:
            # The queue is full: the broker has been away a long time. Waiting for room
            # would stop the event loop; the caller committed what this says to PostgreSQL.
            self._queue_full.failed(f"to {topic}: the producer's queue is full")
            return
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            reason = error.str() if isinstance(error, KafkaError) else str(exc)
            self._refused.failed(f"to {topic}: {reason}")
            return
        self._queue_full.succeeded()

    def _produce(
        self, topic: str, value: bytes, key: str | None, headers: KafkaHeaders | None, cb: Any
    ) -> None:
        try:
            self._producer.produce(topic, value, key=key, headers=_wire(headers), on_delivery=cb)
        except BufferError:
            self._producer.poll(0.1)
            self._producer.produce(topic, value, key=key, headers=_wire(headers), on_delivery=cb)

    def reachable(self, timeout: float = 2.0) -> bool:
        """True when the broker answers a metadata request (blocking; call from a thread)."""
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return True

    def close(self, timeout: float = 5.0) -> None:
        self._producer.flush(timeout)
        self._running = False
        self._thread.join(timeout)


def _wire(headers: KafkaHeaders | None) -> list[tuple[str, str | bytes | None]]:
    return [(k, v) for k, v in headers or []]


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def ensure_topics(bootstrap: str, topics: list[str], partitions: int, timeout: float = 10) -> None:
    """Create any of ``topics`` that do not exist yet."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": CLIENT_LOG_LEVEL})
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics]
    missing = [t for t in missing if t.topic not in existing]
    if not missing:
        return
    for topic, future in admin.create_topics(missing, operation_timeout=timeout).items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            log.debug("topic %s already exists", topic)
