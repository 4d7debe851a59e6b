"""Event envelopes carried on the Kafka topics (JSON, versioned by ``schema``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.json_value import Identifier, StorableJson, StorableParams

SyncMode = Literal["full", "incremental"]
SyncTrigger = Literal["http", "kafka", "schedule", "cli", "reconciler"]
ProgressType = Literal["connected", "log", "progress", "complete", "error", "timeout"]


KafkaHeaders = list[tuple[str, bytes]]


def utcnow() -> datetime:
    return datetime.now(UTC)


class SchemaRef(BaseModel):
    """Name and version of an envelope's schema, repeated in the Kafka ``schema`` header."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int


class Envelope(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    schema_: SchemaRef = Field(alias="schema")
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: datetime = Field(default_factory=utcnow)
    request_id: Identifier = Field(min_length=1, max_length=200)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    def kafka_headers(self) -> KafkaHeaders:
        return [
            ("request_id", self.request_id.encode()),
            ("schema", f"{self.schema_.name}/v{self.schema_.version}".encode()),
        ]


class PayloadRef(BaseModel):
    """Points at a request body stored in PostgreSQL (large pushed batches)."""

    job_id: uuid.UUID
    sha256: str


class SyncRequest(Envelope):
    """Ask a domain worker to run one sync. ``request_id`` is the idempotency key."""

    schema_: SchemaRef = Field(
        default=SchemaRef(name="syncbus.sync_request", version=1), alias="schema"
    )

    @field_validator("schema_")
    @classmethod
    def _this_schema(cls, value: SchemaRef) -> SchemaRef:
        """Another schema, or a version this worker does not know, is not run as this one."""
        if (value.name, value.version) != ("syncbus.sync_request", 1):
            raise ValueError(f"schema {value.name}/v{value.version} is not syncbus.sync_request/v1")
        return value

    domain: Identifier = Field(min_length=1, max_length=64)
    scope: Identifier = Field("default", min_length=1, max_length=200)
    mode: SyncMode = "incremental"
    trigger: SyncTrigger = "kafka"
    actor: Identifier | None = None
    params: StorableParams = Field(default_factory=dict)
    payload: StorableJson | None = Field(None, description="Inline payload (keep under ~900 KB).")
    payload_ref: PayloadRef | None = Field(None, description="Payload stored in PostgreSQL.")


class ProgressEvent(Envelope):
    """One step of a job, as SSE clients see it (``type`` is the SSE event name)."""

    schema_: SchemaRef = Field(
        default=SchemaRef(name="syncbus.progress", version=1), alias="schema"
    )

    job_id: uuid.UUID
    domain: str
    seq: int = Field(ge=1)
    type: ProgressType
    data: dict[str, Any] = Field(default_factory=dict)


class AuditEvent(Envelope):
    """Something an operator may need to account for later."""

    schema_: SchemaRef = Field(default=SchemaRef(name="syncbus.audit", version=1), alias="schema")

    action: str
    domain: str
    job_id: uuid.UUID | None = None
    actor: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class ChangeEvent(Envelope):
    """A record a sync added, changed or removed, for downstream consumers."""

    schema_: SchemaRef = Field(default=SchemaRef(name="syncbus.change", version=1), alias="schema")
    domain: str
    job_id: uuid.UUID
    change: Literal["added", "changed", "removed"]
    key: str = Field(description="The record's id within the domain (models: the model id).")
    data: dict[str, Any] | None = Field(None, description="The record after the change.")


class DeadLetter(Envelope):
    """A request the worker could not process, with the reason and the original bytes."""

    schema_: SchemaRef = Field(
        default=SchemaRef(name="syncbus.dead_letter", version=1), alias="schema"
    )

    source_topic: str
    reason: str
    job_id: uuid.UUID | None = None
    original: str = Field(description="The original message value, decoded as UTF-8.")


class AlertEvent(Envelope):
    """An alert opened or resolved (``request_id`` is ``alert:<id>:<event>``)."""

    schema_: SchemaRef = Field(default=SchemaRef(name="syncbus.alert", version=1), alias="schema")
    alert_id: int
    event: Literal["opened", "resolved"]
    key: str = Field(description="Rule and subject, e.g. 'job_failed:models'.")
    rule: str
    severity: Literal["warning", "critical"]
    summary: str
    details: dict[str, Any] = Field(default_factory=dict)
    opened_at: datetime
    resolved_at: datetime | None = None


ENVELOPES: tuple[type[Envelope], ...] = (
    SyncRequest,
    ProgressEvent,
    AuditEvent,
    ChangeEvent,
    DeadLetter,
    AlertEvent,
)
