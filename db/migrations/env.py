"""Alembic environment: runs migrations with a synchronous psycopg connection."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

import db.admin_tables
import db.dictionary_tables
import db.git_tables
import db.models_tables
import db.saas_tables
import db.schedule_tables  # noqa: F401
from db.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "sqlalchemy.url must be set by db.migrate"

engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
