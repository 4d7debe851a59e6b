"""What a worker publishes about a job: its audit event, its changes, its dead letter."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from producers.kafka import AsyncProducer
from producers.quiet import Quiet
from schemas.events import AuditEvent, DeadLetter, SyncRequest
from schemas.topics import DOMAINS, Topics
from streams import metrics
from streams.claimed import ClaimedJob

log = logging.getLogger(__name__)

FIRST_RETRY_S = 0.5
LAST_RETRY_S = 30.0
# Failures while the broker answers (a DLQ topic that is gone, say) are no outage: a
# dead letter gives up after this many rather than hold its partition.
GIVE_UP_WHILE_REACHABLE = 3
# What a delivery fails with while the broker cannot be reached (rather than refuses).
BROKER_AWAY = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
    }
)


def broker_away(exc: Exception) -> bool:
    """Whether a delivery failed because the broker could not be reached (a full queue
    of the producer's counts: nothing leaves it)."""
    if isinstance(exc, BufferError):
        return True
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return isinstance(error, KafkaError) and error.code() in BROKER_AWAY


class JobPublisher:
    """Publishes to the audit, changes and dead-letter topics (the caller committed first)."""

    def __init__(self, producer: AsyncProducer, topics: Topics) -> None:
        self._producer = producer
        self._topics = topics
        self._domains = {topics.requests(domain): domain for domain in DOMAINS}

    def changes(self, job: ClaimedJob) -> None:
        assert job.outcome is not None
        topic = self._topics.changes(job.request.domain)
        for change in job.outcome.changes:
            self._producer.send_nowait(
                topic, change.to_json(), key=change.key, headers=change.kafka_headers()
            )

    def audit_event(
        self, request: SyncRequest, job_id: uuid.UUID, succeeded: bool, data: dict[str, Any]
    ) -> AuditEvent:
        # Seed 000 names scheduled runs sync.scheduled / sync.scheduled_failed.
        if request.trigger == "schedule":
            action = "sync.scheduled" if succeeded else "sync.scheduled_failed"
        else:
            action = "sync.succeeded" if succeeded else "sync.failed"
        return AuditEvent(
            request_id=request.request_id,
            action=action,
            domain=request.domain,
            job_id=job_id,
            actor=request.actor,
            data={"trigger": request.trigger, "scope": request.scope, **data},
        )

    def audit(self, event: AuditEvent) -> None:
        self._producer.send_nowait(
            self._topics.audit, event.to_json(), key=event.domain, headers=event.kafka_headers()
        )

    async def dead_letter(
        self,
        topic: str,
        value: bytes,
        reason: str,
        request_id: str,
        job_id: uuid.UUID | None = None,
    ) -> None:
        letter = DeadLetter(
            request_id=request_id,
            source_topic=topic,
            reason=reason,
            job_id=job_id,
            original=(value or b"").decode("utf-8", errors="replace"),  # None: a tombstone
        )
        # Waited out while the broker is away: for a message that could not be parsed, the
        # letter is its only record, and its offset cannot be committed meanwhile anyway.
        waiting = Quiet(log, f"dead letter for {request_id}")
        delay_s, failed_while_reachable = FIRST_RETRY_S, 0
        while True:
            try:
                await self._producer.send(
                    self._topics.dlq,
                    letter.to_json(),
                    key=request_id,
                    headers=letter.kafka_headers(),
                )
                break
            except Exception as exc:
                if broker_away(exc) and await asyncio.to_thread(self._producer.reachable):
                    failed_while_reachable += 1
                if not broker_away(exc) or failed_while_reachable >= GIVE_UP_WHILE_REACHABLE:
                    log.error("dead letter for %s not delivered: %s", request_id, exc)
                    return
                waiting.failed(f"not delivered ({exc})")
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, LAST_RETRY_S)
        waiting.succeeded()
        metrics.DEAD_LETTERS.labels(self._domains.get(topic, "unknown")).inc()
