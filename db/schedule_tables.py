"""Tables of the scheduler and the alerts (migration 0009)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from db.tables import metadata

schedules = Table(
    "schedules",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("name", Text, nullable=False),
    Column("domain", Text, nullable=False),
    Column("scope", Text, nullable=False, server_default="default"),
    Column("mode", Text, nullable=False),
    Column("params", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("cron", Text),
    Column("interval_seconds", Integer),
    Column("timezone", Text, nullable=False, server_default="UTC"),
    Column("enabled", Boolean, nullable=False, server_default="true"),
    Column("next_run", DateTime(timezone=True)),
    Column("last_run", DateTime(timezone=True)),
    Column("last_job_id", UUID(as_uuid=True)),
    # 'config': seeded from the environment, which may still change it; 'api': an operator's.
    Column("origin", Text, nullable=False, server_default="api"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("(cron IS NULL) <> (interval_seconds IS NULL)", name="schedules_one_timer"),
    CheckConstraint("interval_seconds IS NULL OR interval_seconds > 0", name="schedules_interval"),
    CheckConstraint("mode IN ('full', 'incremental')", name="schedules_mode"),
    CheckConstraint("origin IN ('config', 'api')", name="schedules_origin"),
    UniqueConstraint("domain", "scope", "name", name="uq_schedules_domain_scope_name"),
)
Index("ix_schedules_due", schedules.c.next_run, postgresql_where=text("enabled"))

alerts = Table(
    "alerts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("key", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="open"),
    Column("summary", Text, nullable=False),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("opened_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("resolved_at", DateTime(timezone=True)),
    CheckConstraint("status IN ('open', 'resolved')", name="alerts_status"),
    CheckConstraint("severity IN ('warning', 'critical')", name="alerts_severity"),
)
Index("ux_alerts_one_open", alerts.c.key, unique=True, postgresql_where=text("status = 'open'"))
Index("ix_alerts_opened", alerts.c.opened_at.desc())

alert_notifications = Table(
    "alert_notifications",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("alert_id", BigInteger, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("event", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("delivered_at", DateTime(timezone=True)),
    Column("gave_up_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("event IN ('opened', 'resolved')", name="alert_notifications_event"),
)
Index(
    "ix_alert_notifications_pending",
    alert_notifications.c.next_attempt_at,
    postgresql_where=text("delivered_at IS NULL AND gave_up_at IS NULL"),
)

# The domains syncbus_request_sync() (migration 0010) may start, with their modes; each pull
# domain's migration adds its row.
pull_domains = Table(
    "syncbus_pull_domains",
    metadata,
    Column("domain", Text, primary_key=True),
    Column("modes", ARRAY(Text), nullable=False),
)
