"""The merge engine's SQL (db/merge.py): work tables, dedupe, diffing upsert, deletes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from psycopg import sql

CHANGES_TABLE = "_merge_changes"
STAGE_TABLE = "_merge_stage"
SOURCE_TABLE = "_merge_src"  # the staged rows, deduplicated and in key order


@dataclass(frozen=True)
class WorkTables:
    """A merge's temporary tables; a ``tag`` lets several merges share one transaction."""

    stage: str
    src: str
    changes: str

    @classmethod
    def tagged(cls, tag: str) -> WorkTables:
        return cls(STAGE_TABLE + tag, SOURCE_TABLE + tag, CHANGES_TABLE + tag)


def table_of(target: MergeTarget) -> sql.Identifier:
    """The target table, schema-qualified when its name says ``schema.table``."""
    return sql.Identifier(*target.table.split("."))


@dataclass(frozen=True)
class MergeTarget:
    """A table to merge into: its key columns and the content columns compared for change."""

    table: str
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    touch_column: str | None = "updated_at"


def column_list(names: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def qualified(alias: str, names: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(alias, n) for n in names)


def seal_sql(target: MergeTarget, rows: sql.Composable, names: WorkTables) -> sql.Composed:
    return sql.SQL(
        """
        CREATE TEMP TABLE {src} ON COMMIT DROP AS
        SELECT DISTINCT ON ({keys}) {all_cols} FROM {rows} ORDER BY {keys}, _ord DESC
        """
    ).format(
        src=sql.Identifier(names.src),
        keys=column_list(target.keys),
        all_cols=column_list((*target.keys, *target.columns)),
        rows=rows,
    )


def key_match(left: str, right: str, keys: Iterable[str]) -> sql.Composed:
    return sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(left, k), sql.Identifier(right, k)) for k in keys
    )


def sampled_keys_exist_sql(target: MergeTarget, names: WorkTables) -> sql.Composed:
    # About 1 % of the source's pages (a fixed sample: REPEATABLE), each key probed in the
    # index. Too small a source samples nothing, and the plain insert is tried.
    return sql.SQL(
        """
        SELECT EXISTS (
            SELECT 1 FROM {src} AS s TABLESAMPLE SYSTEM (1) REPEATABLE (0)
            WHERE EXISTS (SELECT 1 FROM {table} t WHERE {match})
        )
        """
    ).format(
        src=sql.Identifier(names.src),
        table=table_of(target),
        match=key_match("t", "s", target.keys),
    )


def insert_all_sql(target: MergeTarget, names: WorkTables) -> sql.Composed:
    all_cols = column_list((*target.keys, *target.columns))
    return sql.SQL("INSERT INTO {table} ({cols}) SELECT {cols} FROM {src}").format(
        table=table_of(target), cols=all_cols, src=sql.Identifier(names.src)
    )


def log_all_created_sql(target: MergeTarget, names: WorkTables) -> sql.Composed:
    return sql.SQL("INSERT INTO {changes} SELECT {keys}, 'created' FROM {src}").format(
        changes=sql.Identifier(names.changes),
        keys=column_list(target.keys),
        src=sql.Identifier(names.src),
    )


def upsert_sql(target: MergeTarget, names: WorkTables) -> sql.Composed:
    """The upsert of the sealed source table, logging each changed key into the changes
    table; returns (distinct, created, updated)."""
    return sql.SQL(
        """
        WITH {diff},
        logged AS (
            INSERT INTO {changes} SELECT * FROM changed RETURNING op
        )
        SELECT (SELECT count(*) FROM {src}),
               count(*) FILTER (WHERE op = 'created'),
               count(*) FILTER (WHERE op = 'updated')
        FROM logged
        """
    ).format(
        diff=_diff_ctes(target, sql.Identifier(names.src)),
        changes=sql.Identifier(names.changes),
        src=sql.Identifier(names.src),
    )


def direct_upsert_sql(
    target: MergeTarget,
    rows: sql.Composable,
    log_changes: Callable[[sql.Identifier], sql.Composable] | None = None,
) -> sql.Composed:
    """The upsert of a query's rows (``rows``: target columns plus ``_ord``) in a single
    statement, with no work tables: deduplicated (later ``_ord`` wins) as a materialised
    CTE, diffed as :func:`upsert_sql` does. ``log_changes(changed)``, a data-modifying
    statement over the relation ``changed`` (key columns + ``op``), writes what changed
    in the same statement. Returns (distinct, created, updated)."""
    keys = column_list(target.keys)
    logged: sql.Composable = sql.SQL("")
    if log_changes is not None:
        logged = sql.SQL(", logged AS ({})").format(log_changes(sql.Identifier("changed")))
    # pg_stat_activity shows a statement's first 1 kB: the comment names this one there.
    label = sql.SQL("/* merge into {} */").format(sql.SQL(target.table.replace("*/", "")))
    return sql.SQL(
        """
        {label} WITH src AS MATERIALIZED (
            SELECT DISTINCT ON ({keys}) {all_cols} FROM ({rows}) AS rows
            ORDER BY {keys}, _ord DESC
        ),
        {diff}{logged}
        SELECT (SELECT count(*) FROM src),
               count(*) FILTER (WHERE op = 'created'),
               count(*) FILTER (WHERE op = 'updated')
        FROM changed
        """
    ).format(
        label=label,
        keys=keys,
        all_cols=column_list((*target.keys, *target.columns)),
        rows=rows,
        diff=_diff_ctes(target, sql.Identifier("src")),
        logged=logged,
    )


def _diff_ctes(target: MergeTarget, src: sql.Identifier) -> sql.Composed:
    # New keys are inserted first (ON CONFLICT DO NOTHING neither waits on nor locks an
    # existing row), so a new row costs one index probe. Only the keys that were not
    # inserted are compared with the table, so unchanged rows are neither rewritten nor
    # locked; each is looked up through the key index (the LIMIT keeps the planner from
    # turning the LATERAL into a hash join that reads the whole table); when every key was
    # new, the counts in ``rest`` skip that step at once. A key another transaction added
    # in between is still updated where it differs: the later batch wins. ``changed``:
    # each written key with its op.
    keys, cols = target.keys, target.columns
    all_cols = (*keys, *cols)
    sets = [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in cols]
    if target.touch_column:
        sets.append(sql.SQL("{} = now()").format(sql.Identifier(target.touch_column)))
    return sql.SQL(
        """
        ins AS (
            INSERT INTO {table} AS t ({all_cols}) SELECT {all_cols} FROM {src}
            ON CONFLICT ({keys}) DO NOTHING
            RETURNING {t_keys}
        ),
        rest AS (
            SELECT * FROM {src} s
            WHERE (SELECT count(*) FROM ins) < (SELECT count(*) FROM {src})
              AND NOT EXISTS (SELECT 1 FROM ins i WHERE {ins_match})
            OFFSET 0
        ),
        todo AS (
            SELECT {s_cols} FROM rest s
            LEFT JOIN LATERAL (SELECT {t_content} FROM {table} t WHERE {join} LIMIT 1) t ON true
            WHERE t.{first_key} IS NULL OR ROW({t_cols}) IS DISTINCT FROM ROW({s_content})
        ),
        up AS (
            INSERT INTO {table} AS t ({all_cols}) SELECT {all_cols} FROM todo
            ON CONFLICT ({keys}) DO UPDATE SET {sets}
            WHERE ROW({t_cols}) IS DISTINCT FROM ROW({ex_cols})
            RETURNING {t_keys}, CASE WHEN t.xmax = 0 THEN 'created' ELSE 'updated' END AS op
        ),
        changed AS (SELECT *, 'created' AS op FROM ins UNION ALL SELECT * FROM up)
        """
    ).format(
        keys=column_list(keys),
        all_cols=column_list(all_cols),
        src=src,
        table=table_of(target),
        sets=sql.SQL(", ").join(sets),
        t_cols=qualified("t", cols),
        ex_cols=qualified("excluded", cols),
        s_cols=qualified("s", all_cols),
        s_content=qualified("s", cols),
        t_content=qualified("t", all_cols),
        join=key_match("t", "s", keys),
        ins_match=key_match("i", "s", keys),
        first_key=sql.Identifier(keys[0]),
        t_keys=qualified("t", keys),
    )


def delete_sql(
    target: MergeTarget, scope: Mapping[str, object], keep: sql.Composable | None, names: WorkTables
) -> sql.Composed:
    # The keys to delete come from a set difference (a hash or sort EXCEPT), not an anti-join:
    # rows just written in this transaction have no statistics yet, and the planner, expecting
    # two rows, chose a nested loop that compared every staged row with every stored one
    # (20,000 rows: 200 million comparisons, 13 s). Each key found is then deleted by index.
    conditions = [
        sql.SQL("{} = {}").format(sql.Identifier("t", c), sql.Placeholder(c)) for c in scope
    ]
    if keep is not None:
        conditions.append(sql.SQL("NOT ({})").format(keep))
    where = sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("true")
    return sql.SQL(
        """
        WITH gone_keys AS (
            SELECT {t_keys} FROM {table} AS t WHERE {where}
            EXCEPT SELECT {keys} FROM {src}
        ),
        gone AS (
            DELETE FROM {table} AS t USING gone_keys g WHERE {match} RETURNING {t_keys}
        ),
        logged AS (INSERT INTO {changes} SELECT *, 'deleted' FROM gone RETURNING 1)
        SELECT count(*) FROM logged
        """
    ).format(
        table=table_of(target),
        where=where,
        keys=column_list(target.keys),
        src=sql.Identifier(names.src),
        match=key_match("g", "t", target.keys),
        t_keys=qualified("t", target.keys),
        changes=sql.Identifier(names.changes),
    )
