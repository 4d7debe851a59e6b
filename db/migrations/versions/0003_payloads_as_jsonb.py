"""payloads as uncompressed jsonb

Pushed batches are parsed by PostgreSQL once, when the api stores them, so the worker can
validate and stage them set-based; EXTERNAL storage skips pglz (3x faster writes of
multi-megabyte bodies).

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE sync_payloads ALTER COLUMN body TYPE jsonb "
        "USING convert_from(body, 'UTF8')::jsonb"
    )
    op.execute("ALTER TABLE sync_payloads ALTER COLUMN body SET STORAGE EXTERNAL")
    op.drop_column("sync_payloads", "content_type")


def downgrade() -> None:
    op.execute(
        "ALTER TABLE sync_payloads ADD COLUMN content_type text NOT NULL DEFAULT 'application/json'"
    )
    op.execute("ALTER TABLE sync_payloads ALTER COLUMN body SET STORAGE EXTENDED")
    op.execute(
        "ALTER TABLE sync_payloads ALTER COLUMN body TYPE bytea "
        "USING convert_to(body::text, 'UTF8')"
    )
