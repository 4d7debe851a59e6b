"""admin page sessions

One row per signed-in browser: the sha256 of the cookie's random token (never the token
itself), the kind of credential that opened it, and when it was last used, for the idle
expiry (``SYNCBUS_ADMIN_SESSION_IDLE_MINUTES``).

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE admin_sessions (
            token_sha256 text PRIMARY KEY,
            credential text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            last_seen_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT admin_sessions_credential CHECK (credential IN ('key', 'pin'))
        )
        """
    )
    op.execute("CREATE INDEX ix_admin_sessions_last_seen ON admin_sessions (last_seen_at)")


def downgrade() -> None:
    op.execute("DROP TABLE admin_sessions")
