"""Core tables shared by every domain (design.md §5)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")

sync_jobs = Table(
    "sync_jobs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("request_id", Text, nullable=False, unique=True),
    Column("domain", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("mode", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="queued"),
    Column("trigger", Text, nullable=False),
    Column("actor", Text),
    Column("params", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("payload_sha256", Text),
    Column("discovered", Integer, nullable=False, server_default="0"),
    Column("created", Integer, nullable=False, server_default="0"),
    Column("updated", Integer, nullable=False, server_default="0"),
    Column("deleted", Integer, nullable=False, server_default="0"),
    Column("unchanged", Integer, nullable=False, server_default="0"),
    Column("errors", Integer, nullable=False, server_default="0"),
    Column("result", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("error_message", Text),
    Column("error_details", JSONB),
    Column("attempt", Integer, nullable=False, server_default="0"),
    # At most one queued or running exclusive job per (domain, scope): a second trigger is a 409.
    Column("exclusive", Boolean, nullable=False, server_default="false"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True)),
    Column("started_at", DateTime(timezone=True)),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # A job's number for people and for seed 002's integer history ids (migration 0012).
    Column("number", BigInteger, Identity(always=False), nullable=False),
    CheckConstraint(
        "status IN ('queued','running','succeeded','failed','cancelled')", name="sync_jobs_status"
    ),
    CheckConstraint("mode IN ('full','incremental')", name="sync_jobs_mode"),
)
Index("ix_sync_jobs_domain_created", sync_jobs.c.domain, sync_jobs.c.created_at.desc())
Index("ux_sync_jobs_number", sync_jobs.c.number, unique=True)
Index(
    "ux_sync_jobs_one_active_exclusive",
    sync_jobs.c.domain,
    sync_jobs.c.scope,
    unique=True,
    postgresql_where=text("exclusive AND status IN ('queued','running')"),
)
Index(
    "ix_sync_jobs_scope_active",
    sync_jobs.c.domain,
    sync_jobs.c.scope,
    sync_jobs.c.number,
    postgresql_where=text("status IN ('queued', 'running')"),
)
Index(
    "ix_sync_jobs_active",
    sync_jobs.c.domain,
    sync_jobs.c.status,
    sync_jobs.c.created_at,
    postgresql_where=text("status IN ('queued','running')"),
)

sync_payloads = Table(
    "sync_payloads",
    metadata,
    Column(
        "job_id",
        UUID(as_uuid=True),
        # Checked at commit: the api stores a batch before the job row that needs its header.
        ForeignKey("sync_jobs.id", ondelete="CASCADE", deferrable=True, initially="DEFERRED"),
        primary_key=True,
    ),
    # EXTERNAL storage (migration 0003): multi-megabyte batches are written uncompressed.
    Column("body", JSONB, nullable=False),
    # Computed once as the batch is stored, so reading them never fetches ``body``.
    Column(
        "header",
        JSONB,
        Computed(
            "CASE WHEN jsonb_typeof(body) = 'object' THEN body - 'entries' END", persisted=True
        ),
    ),
    Column("entries_type", Text, Computed("jsonb_typeof(body -> 'entries')", persisted=True)),
    Column(
        "entries_count",
        Integer,
        Computed(
            "CASE WHEN jsonb_typeof(body -> 'entries') = 'array' "
            "THEN jsonb_array_length(body -> 'entries') ELSE 0 END",
            persisted=True,
        ),
    ),
)

sync_events = Table(
    "sync_events",
    metadata,
    Column("job_id", UUID(as_uuid=True), ForeignKey("sync_jobs.id", ondelete="CASCADE")),
    Column("seq", Integer, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("type", Text, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("job_id", "seq"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("domain", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("actor", Text),
    Column("job_id", UUID(as_uuid=True)),
    Column("data", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
)
Index("ix_audit_log_occurred", audit_log.c.occurred_at.desc())

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("topic", Text, nullable=False),
    Column("request_id", Text, index=True),
    Column("key", Text),
    Column("value", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    # A relay publishing the row; another relay takes it over once this has passed.
    Column("claimed_until", DateTime(timezone=True)),
)

sync_state = Table(
    "sync_state",
    metadata,
    Column("domain", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("collection", Text, nullable=False),
    Column("cursor", Text),
    Column("last_synced_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("domain", "scope", "collection"),
)

app_settings = Table(
    "app_settings",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# GCRA buckets of db.rate_limit (UNLOGGED in the migration: no WAL for a limiter).
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("bucket", Text, primary_key=True),
    Column("tat", DateTime(timezone=True), nullable=False),
    prefixes=["UNLOGGED"],
)
