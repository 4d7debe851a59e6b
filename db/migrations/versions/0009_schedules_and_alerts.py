"""schedules fired by the leading worker, and alerts with their webhook notifications

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE schedules (
            id uuid PRIMARY KEY,
            name text NOT NULL,
            domain text NOT NULL,
            scope text NOT NULL DEFAULT 'default',
            mode text NOT NULL,
            params jsonb NOT NULL DEFAULT '{}'::jsonb,
            cron text,
            interval_seconds integer,
            timezone text NOT NULL DEFAULT 'UTC',
            enabled boolean NOT NULL DEFAULT true,
            next_run timestamptz,
            last_run timestamptz,
            last_job_id uuid,
            origin text NOT NULL DEFAULT 'api',
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT schedules_one_timer CHECK ((cron IS NULL) <> (interval_seconds IS NULL)),
            CONSTRAINT schedules_interval CHECK (interval_seconds IS NULL OR interval_seconds > 0),
            CONSTRAINT schedules_mode CHECK (mode IN ('full', 'incremental')),
            CONSTRAINT schedules_origin CHECK (origin IN ('config', 'api')),
            CONSTRAINT uq_schedules_domain_scope_name UNIQUE (domain, scope, name)
        )
        """
    )
    op.execute("CREATE INDEX ix_schedules_due ON schedules (next_run) WHERE enabled")
    op.execute(
        """
        CREATE TABLE alerts (
            id bigserial PRIMARY KEY,
            key text NOT NULL,
            rule text NOT NULL,
            severity text NOT NULL,
            status text NOT NULL DEFAULT 'open',
            summary text NOT NULL,
            details jsonb NOT NULL DEFAULT '{}'::jsonb,
            opened_at timestamptz NOT NULL DEFAULT now(),
            last_seen_at timestamptz NOT NULL DEFAULT now(),
            resolved_at timestamptz,
            CONSTRAINT alerts_status CHECK (status IN ('open', 'resolved')),
            CONSTRAINT alerts_severity CHECK (severity IN ('warning', 'critical'))
        )
        """
    )
    op.execute("CREATE UNIQUE INDEX ux_alerts_one_open ON alerts (key) WHERE status = 'open'")
    op.execute("CREATE INDEX ix_alerts_opened ON alerts (opened_at DESC)")
    op.execute(
        """
        CREATE TABLE alert_notifications (
            id bigserial PRIMARY KEY,
            alert_id bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
            event text NOT NULL,
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            delivered_at timestamptz,
            gave_up_at timestamptz,
            last_error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT alert_notifications_event CHECK (event IN ('opened', 'resolved'))
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_alert_notifications_pending ON alert_notifications (next_attempt_at) "
        "WHERE delivered_at IS NULL AND gave_up_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP TABLE alert_notifications")
    op.execute("DROP TABLE alerts")
    op.execute("DROP TABLE schedules")
