"""Alembic: the migration matches the models, and goes down and up again cleanly."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

import db.admin_tables
import db.dictionary_tables
import db.git_tables
import db.models_tables
import db.saas_tables
import db.schedule_tables  # noqa: F401
from cli.embedded import EmbeddedPostgres
from db.migrate import alembic_config, upgrade
from db.tables import metadata
from schemas.settings import Settings


def test_upgrade_matches_models_and_round_trips(postgres: EmbeddedPostgres) -> None:
    settings = Settings(DATABASE_URL=postgres.create_database("migrations_check"))
    upgrade(settings)
    engine = create_engine(settings.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "include_schemas": True,
                    "include_name": lambda name, kind, _parent: (
                        kind != "schema" or name in (None, "public", "supasaasy")
                    ),
                },
            )
            diff = compare_metadata(context, metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        command.downgrade(alembic_config(settings), "base")
        with engine.connect() as conn:
            tables = conn.exec_driver_sql(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' "
                "AND table_name <> 'alembic_version'"
            ).scalar_one()
        assert tables == 0
        upgrade(settings)
        with engine.connect() as conn:
            view = conn.exec_driver_sql("SELECT count(*) FROM internal_dictionary_sync_jobs")
            assert view.scalar_one() == 0
    finally:
        engine.dispose()
