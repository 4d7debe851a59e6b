"""Tables of the git domain (seed 002; migration 0012)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from db.tables import metadata

releases = Table(
    "releases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column("git_branch", Text),
    Column("active", Boolean, nullable=False, server_default="true"),
    # 'config': from SYNCBUS_RELEASES_FILE, which may still change it; 'api': an operator's.
    Column("origin", Text, nullable=False, server_default="api"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("origin IN ('config', 'api')", name="releases_origin"),
)

test_metadata = Table(
    "test_metadata",
    metadata,
    Column("release_id", Integer, ForeignKey("releases.id", ondelete="CASCADE"), nullable=False),
    Column("nodeid", Text, nullable=False),
    Column("file", Text, nullable=False),
    Column("line", Integer, nullable=False),
    Column("class_name", Text),
    Column("function", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("markers", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("parametrize_count", Integer, nullable=False, server_default="0"),
    Column("parametrize_ids", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("docstring", Text),
    Column("staging", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("release_id", "nodeid"),
)

# What parsing a file found, by path and blob id: a file is parsed once, whatever its release.
git_modules = Table(
    "git_modules",
    metadata,
    Column("path", Text, nullable=False),
    Column("blob_sha", Text, nullable=False),
    Column("parser", Text, nullable=False),  # summaries of an older parser are not reused
    Column("summary", JSONB, nullable=False),
    Column("error", Text),  # why it could not be parsed
    # Modules (dotted names) it may take test classes or tests from.
    Column("dependencies", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("path", "blob_sha", "parser"),
)
