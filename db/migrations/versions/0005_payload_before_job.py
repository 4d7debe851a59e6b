"""a pushed batch may be stored before its job row, in the same transaction

The api lets PostgreSQL parse a pushed batch once, as it stores it, and reads the header
back from it; the job row, which needs that header, follows in the same transaction. The
foreign key is therefore checked at commit.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE sync_payloads ALTER CONSTRAINT sync_payloads_job_id_fkey "
        "DEFERRABLE INITIALLY DEFERRED"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE sync_payloads ALTER CONSTRAINT sync_payloads_job_id_fkey NOT DEFERRABLE"
    )
