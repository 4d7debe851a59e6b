"""Tables of the dictionary domain (seed 004)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from db.tables import metadata

dictionary_entries = Table(
    "dictionary_entries",
    metadata,
    Column("lang", Text, nullable=False),
    Column("word", Text, nullable=False),
    Column("ru", Text),
    Column("level", Text),
    Column("register", Text),
    Column("accent", Text),
    Column("frequency_rank", Integer),
    Column("rarity", Text),
    Column("ipa_uk", Text),
    Column("ipa_us", Text),
    Column("example", Text),
    Column("example_ru", Text),
    Column("extra", JSONB),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("lang", "word"),
)

dictionary_versions = Table(
    "dictionary_versions",
    metadata,
    Column("lang", Text, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

dictionary_audit_log = Table(
    "dictionary_audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("lang", Text, nullable=False),
    Column("word", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("actor_username", Text),
    Column("job_id", UUID(as_uuid=True)),
    Column("meta", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_dictionary_audit_log_job", dictionary_audit_log.c.job_id)
