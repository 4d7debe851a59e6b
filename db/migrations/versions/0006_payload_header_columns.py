"""a stored batch's header and entries' shape as generated columns

The worker reads a batch's header before staging its entries. Read from ``body``, that
meant fetching the whole multi-megabyte jsonb from TOAST three times; PostgreSQL now
computes the three small values once, as it stores the batch. Adding them rewrites
``sync_payloads``, which holds only the batches of the retention window
(``SYNCBUS_PAYLOAD_RETENTION_H``).

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE sync_payloads
        ADD COLUMN header jsonb GENERATED ALWAYS AS (
            CASE WHEN jsonb_typeof(body) = 'object' THEN body - 'entries' END
        ) STORED,
        ADD COLUMN entries_type text GENERATED ALWAYS AS (
            jsonb_typeof(body -> 'entries')
        ) STORED,
        ADD COLUMN entries_count integer GENERATED ALWAYS AS (
            CASE WHEN jsonb_typeof(body -> 'entries') = 'array'
                 THEN jsonb_array_length(body -> 'entries') ELSE 0 END
        ) STORED
        """
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE sync_payloads DROP COLUMN header, DROP COLUMN entries_type, "
        "DROP COLUMN entries_count"
    )
