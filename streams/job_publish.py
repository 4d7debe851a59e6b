"""What a worker publishes about a job: its audit event, its changes, its dead letter."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from producers.kafka import AsyncProducer
from schemas.events import AuditEvent, DeadLetter, SyncRequest
from schemas.topics import DOMAINS, Topics
from streams import metrics
from streams.claimed import ClaimedJob

log = logging.getLogger(__name__)


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
        try:
            await self._producer.send(
                self._topics.dlq, letter.to_json(), key=request_id, headers=letter.kafka_headers()
            )
        except Exception:
            log.exception("could not publish dead letter for %s", request_id)
            return
        metrics.DEAD_LETTERS.labels(self._domains.get(topic, "unknown")).inc()
