"""dictionary audit rows indexed by the sync that wrote them

Every changed entry of a push writes an audit row. An index on (lang, word) made that
write cost more than the entry's own upsert (a random b-tree insertion per row); an index
on job_id costs almost nothing (the rows of one push share the key) and answers "what did
this sync change". The history of one word is a sequential scan of the log.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_dictionary_audit_log_word", table_name="dictionary_audit_log")
    op.create_index("ix_dictionary_audit_log_job", "dictionary_audit_log", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_dictionary_audit_log_job", table_name="dictionary_audit_log")
    op.create_index("ix_dictionary_audit_log_word", "dictionary_audit_log", ["lang", "word"])
