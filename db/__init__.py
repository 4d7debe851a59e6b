"""PostgreSQL: table definitions, engine factory, job store, merge engine, migrations."""
