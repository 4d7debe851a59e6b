"""Tables of the models domain (seeds 000 and 003): the catalogue and its change history."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from db.tables import metadata

model_catalog = Table(
    "model_catalog",
    metadata,
    Column("id", Text, primary_key=True),
    Column("provider", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("context_length", Integer),
    Column("max_output", Integer),
    Column("input_price", Numeric),
    Column("output_price", Numeric),
    Column("input_modalities", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("output_modalities", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("capabilities", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("release_date", Date),
    Column("open_weights", Boolean),
    Column("status", Text, nullable=False, server_default="active"),
    Column("sources", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("source_ids", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("extras", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("ix_model_catalog_provider", model_catalog.c.provider)

# One row per change of a model (added / changed / removed), never for an unchanged model.
model_snapshots = Table(
    "model_snapshots",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("sync_id", UUID(as_uuid=True), nullable=False),
    Column("model_id", Text, nullable=False),
    Column("change", Text, nullable=False),
    Column("provider", Text),
    Column("source", Text),
    Column("data", JSONB),
    Column("synced_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("idx_model_snapshots_sync_id", model_snapshots.c.sync_id)
Index("idx_model_snapshots_synced_at", model_snapshots.c.synced_at)
Index("idx_model_snapshots_source", model_snapshots.c.source)
Index("idx_model_snapshots_provider", model_snapshots.c.provider)
Index("idx_model_snapshots_model_id", model_snapshots.c.model_id, model_snapshots.c.synced_at)
