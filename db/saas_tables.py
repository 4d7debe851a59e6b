"""Tables of the saas domain (seed 001, supasaasy; migrations 0011 and 0015)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from db.tables import metadata

SCHEMA = "supasaasy"

saas_apps = Table(
    "saas_apps",
    metadata,
    Column("app_key", Text, primary_key=True),
    Column("connector", Text, nullable=False),
    Column("api_key_env", Text, nullable=False),
    Column("webhook_secret_env", Text, nullable=False),
    Column("api_base", Text, nullable=False),
    Column("resources", ARRAY(Text), nullable=False),
    Column("schedule", Text),
    Column("mode", Text, nullable=False, server_default="incremental"),
    Column("sync_from", Date),
    Column("origin", Text, nullable=False, server_default="api"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("app_key ~ '^[A-Za-z0-9_-]{1,64}$'", name="saas_apps_app_key_check"),
    CheckConstraint("mode IN ('full', 'incremental')", name="saas_apps_mode_check"),
    CheckConstraint("origin IN ('config', 'api')", name="saas_apps_origin_check"),
)

entities = Table(
    "entities",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("external_id", Text, nullable=False),
    Column("app_key", Text, nullable=False),
    Column("collection_key", Text, nullable=False),
    Column("api_version", Text),
    Column("raw_payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("archived_at", DateTime(timezone=True)),
    Column("deleted_at", DateTime(timezone=True)),
    UniqueConstraint(
        "app_key", "collection_key", "external_id", name="entities_app_collection_external_unique"
    ),
    schema=SCHEMA,
)

# The latest change a change feed or webhook applied to each object (unix seconds of the
# event): an older change is skipped (migration 0015).
change_times = Table(
    "saas_change_times",
    metadata,
    Column("app_key", Text, primary_key=True),
    Column("collection_key", Text, primary_key=True),
    Column("external_id", Text, primary_key=True),
    Column("occurred", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False, server_default=text("false")),
)
