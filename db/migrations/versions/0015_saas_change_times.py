"""when the source last changed each object a saas change feed or webhook wrote

Stripe delivers webhooks in no particular order and retries them for days. The worker keeps
the time of the latest change it applied to each object (the event's ``created``) and
whether it deleted the object, so a change older than that (or an update as old as the
deletion), or older than its collection's cursor, is skipped instead of overwriting newer
data (``streams/domains/saas/staging.py``).

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE saas_change_times (
            app_key text NOT NULL,
            collection_key text NOT NULL,
            external_id text NOT NULL,
            occurred bigint NOT NULL,
            deleted boolean NOT NULL DEFAULT false,
            PRIMARY KEY (app_key, collection_key, external_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE saas_change_times")
