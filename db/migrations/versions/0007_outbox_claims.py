"""outbox rows are claimed for a while instead of locked while Kafka answers

The relay used to hold a transaction (a pooled connection) from selecting rows until the
broker acknowledged them: up to the producer's 15 s timeout per publish, so with the broker
down a few dozen accepted requests exhausted the api's pool. A claim is now a timestamp,
set and committed at once; the rows are published with no connection held.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE outbox ADD COLUMN claimed_until timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE outbox DROP COLUMN claimed_until")
