"""a scope's active jobs in acceptance order

The worker applies a scope's queued jobs together and in the order they were accepted
(``db/claims.py``): it reads the scope's queued and running jobs by ``number``.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ix_sync_jobs_scope_active ON sync_jobs (domain, scope, number) "
        "WHERE status IN ('queued', 'running')"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_sync_jobs_scope_active")
