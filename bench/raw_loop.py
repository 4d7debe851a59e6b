"""The reference for small batches: the per-batch loop a user would write by hand.

One connection, one loop over the batches, and per batch what a hand-written job queue
does: commit a job row, then in a second transaction COPY the batch into a temporary
table, upsert it, write an audit row per changed entry and update the job with its
counts, and commit. Durable commits (the server's ``synchronous_commit``), fresh tables
shaped like ``dictionary_entries`` and ``dictionary_audit_log``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import psycopg
from psycopg import sql

LOOP_TABLE = "bench_loop_entries"
LOOP_AUDIT = "bench_loop_audit"
LOOP_JOBS = "bench_loop_jobs"


def _ids(names: Sequence[str], alias: str | None = None) -> sql.Composed:
    if alias:
        return sql.SQL(", ").join(sql.Identifier(alias, n) for n in names)
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def prepare(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in (LOOP_TABLE, LOOP_AUDIT, LOOP_JOBS):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE dictionary_entries INCLUDING ALL)").format(
                sql.Identifier(LOOP_TABLE)
            )
        )
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE dictionary_audit_log INCLUDING ALL)").format(
                sql.Identifier(LOOP_AUDIT)
            )
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigserial PRIMARY KEY, request_id text UNIQUE NOT NULL, "
                "status text NOT NULL, created int, updated int, "
                "created_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz)"
            ).format(sql.Identifier(LOOP_JOBS))
        )


def run_loop(
    database_url: str,
    batches: Sequence[Sequence[tuple[object, ...]]],
    keys: Sequence[str],
    content: Sequence[str],
) -> float:
    """Seconds for the loop over ``batches`` (rows: key columns, then content columns)."""
    columns = (*keys, *content)
    sets = sql.SQL(", ").join(
        [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in content]
        + [sql.SQL("updated_at = now()")]
    )
    stage = sql.SQL(
        "CREATE TEMP TABLE loop_stage ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA"
    ).format(_ids(columns), sql.Identifier(LOOP_TABLE))
    copy_sql = sql.SQL("COPY loop_stage ({}) FROM STDIN").format(_ids(columns))
    upsert = sql.SQL(
        """
        WITH up AS (
            INSERT INTO {table} AS t ({cols}) SELECT DISTINCT ON ({keys}) {cols} FROM loop_stage
            ON CONFLICT ({keys}) DO UPDATE SET {sets}
            WHERE ROW({t_cols}) IS DISTINCT FROM ROW({ex_cols})
            RETURNING t.lang, t.word, CASE WHEN t.xmax = 0 THEN 'created' ELSE 'updated' END AS op
        ),
        audited AS (
            INSERT INTO {audit} (lang, word, action, actor_username, meta)
            SELECT lang, word, op, 'bench', '{{}}'::jsonb FROM up RETURNING action
        )
        SELECT count(*) FILTER (WHERE action = 'created'),
               count(*) FILTER (WHERE action = 'updated')
        FROM audited
        """
    ).format(
        table=sql.Identifier(LOOP_TABLE),
        audit=sql.Identifier(LOOP_AUDIT),
        cols=_ids(columns),
        keys=_ids(keys),
        sets=sets,
        t_cols=_ids(content, "t"),
        ex_cols=_ids(content, "excluded"),
    )
    new_job = sql.SQL("INSERT INTO {} (request_id, status) VALUES (%s, 'queued') RETURNING id")
    finish = sql.SQL(
        "UPDATE {} SET status = 'succeeded', created = %s, updated = %s, "
        "finished_at = clock_timestamp() WHERE id = %s"
    )
    with psycopg.connect(database_url) as conn:
        started = time.monotonic()
        for number, rows in enumerate(batches):
            cur = conn.execute(new_job.format(sql.Identifier(LOOP_JOBS)), (f"loop-{number}",))
            row = cur.fetchone()
            assert row is not None
            conn.commit()
            conn.execute(stage)
            with conn.cursor() as copy_cur, copy_cur.copy(copy_sql) as copy:
                for entry in rows:
                    copy.write_row(entry)
            counts = conn.execute(upsert).fetchone() or (0, 0)
            conn.execute(finish.format(sql.Identifier(LOOP_JOBS)), (*counts, row[0]))
            conn.commit()
        return time.monotonic() - started
