"""Library for outside services: publish a sync request straight to Kafka.

    from producers.publisher import SyncRequestPublisher

    with SyncRequestPublisher("kafka:9092") as publisher:
        request = publisher.publish("dictionary", payload={...}, scope="en")

The worker treats it exactly like a request that came over HTTP: the ``request_id``
(derived from the payload when not given) makes re-publishing safe.
"""

from __future__ import annotations

import hashlib
from types import TracebackType
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from producers.kafka import producer_config
from schemas.events import SyncMode, SyncRequest
from schemas.topics import Topics, request_key

MAX_INLINE_PAYLOAD = 900_000


class PublishError(RuntimeError):
    """The broker did not acknowledge the request."""


def derived_request_id(domain: str, scope: str, payload: Any) -> str:
    """A stable id for a payload, so publishing the same content twice runs it once."""
    digest = hashlib.sha256(orjson.dumps([domain, scope, payload], option=orjson.OPT_SORT_KEYS))
    return f"{domain}-{digest.hexdigest()[:32]}"


class SyncRequestPublisher:
    """Publishes ``SyncRequest`` envelopes to ``<prefix>requests.<domain>``."""

    def __init__(self, bootstrap_servers: str, *, topic_prefix: str = "syncbus.") -> None:
        self._producer = Producer(producer_config(bootstrap_servers))
        self._topics = Topics(topic_prefix)

    def publish(
        self,
        domain: str,
        payload: Any = None,
        *,
        scope: str = "default",
        mode: SyncMode = "incremental",
        request_id: str | None = None,
        actor: str | None = None,
        params: dict[str, Any] | None = None,
        timeout: float = 15.0,
    ) -> SyncRequest:
        """Publish one request and wait for the broker to acknowledge it."""
        request = SyncRequest(
            request_id=request_id or derived_request_id(domain, scope, payload),
            domain=domain,
            scope=scope,
            mode=mode,
            trigger="kafka",
            actor=actor,
            params=params or {},
            payload=payload,
        )
        value = request.to_json()
        if len(value) > MAX_INLINE_PAYLOAD:
            raise ValueError(
                f"request is {len(value)} bytes; split the payload or push it over HTTP"
            )
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        self._producer.produce(
            self._topics.requests(domain),
            value,
            key=request_key(domain, scope),
            headers=[(k, v) for k, v in request.kafka_headers()],
            on_delivery=on_delivery,
        )
        if self._producer.flush(timeout) > 0:
            raise PublishError(f"request {request.request_id} not acknowledged in {timeout}s")
        if errors:
            raise PublishError(str(KafkaException(errors[0])))
        return request

    def close(self) -> None:
        self._producer.flush(5)

    def __enter__(self) -> SyncRequestPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
