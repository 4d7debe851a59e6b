"""rate limits shared by every api replica

One row per bucket (say, failed authentication from one address) holding the GCRA's
theoretical arrival time: a request at ``now`` fits while ``max(tat, now) + interval``
stays within ``now + period``. UNLOGGED: a limiter needs no crash safety, and its writes
skip the WAL.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE UNLOGGED TABLE rate_limits (bucket text PRIMARY KEY, tat timestamptz NOT NULL)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE rate_limits")
