"""Tables of the admin page: its sign-in sessions (migration 0013)."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, DateTime, Index, Table, Text, func

from db.tables import metadata

# One row per signed-in browser, keyed by the sha256 of its cookie's token: a copy of the
# table opens no session.
admin_sessions = Table(
    "admin_sessions",
    metadata,
    Column("token_sha256", Text, primary_key=True),
    Column("credential", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("credential IN ('key', 'pin')", name="admin_sessions_credential"),
)
Index("ix_admin_sessions_last_seen", admin_sessions.c.last_seen_at)
