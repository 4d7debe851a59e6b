"""The merge engine every domain uses: stage rows, set-based diff, exact counts.

Rows come from Python (streamed with COPY) or from SQL over data already in PostgreSQL
(a pushed batch stored as jsonb). Callers run it inside their own transaction. Changed
keys land in the temporary table ``_merge_changes`` (key columns + ``op``:
created/updated/deleted) until the transaction ends, so a domain can write its audit rows
from it in the same transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, errors, sql

CHANGES_TABLE = "_merge_changes"
WORK_MEM = "128MB"
STAGE_TABLE = "_merge_stage"
SOURCE_TABLE = "_merge_src"  # the staged rows, deduplicated and in key order
ALL_NEW_MIN_ROWS = 1000  # from this many staged rows on, try a plain INSERT first

ProgressCallback = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class _Names:
    """A merge's temporary tables; a ``tag`` lets several merges share one transaction."""

    stage: str
    src: str
    changes: str

    @classmethod
    def tagged(cls, tag: str) -> _Names:
        return cls(STAGE_TABLE + tag, SOURCE_TABLE + tag, CHANGES_TABLE + tag)


def _table(target: MergeTarget) -> sql.Identifier:
    """The target table, schema-qualified when its name says ``schema.table``."""
    return sql.Identifier(*target.table.split("."))


@dataclass(frozen=True)
class MergeTarget:
    """A table to merge into: its key columns and the content columns compared for change."""

    table: str
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    touch_column: str | None = "updated_at"


@dataclass(frozen=True)
class MergeResult:
    """Exact counts of one merge. ``staged`` counts rows received, duplicates included
    (distinct rows when they came through :meth:`Merge.stage_query`)."""

    staged: int
    distinct: int
    created: int
    updated: int
    deleted: int

    @property
    def unchanged(self) -> int:
        return self.distinct - self.created - self.updated


def _ids(names: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def _qualified(alias: str, names: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(alias, n) for n in names)


async def _create_work_table(
    conn: AsyncConnection[Any],
    target: MergeTarget,
    name: str,
    columns: Sequence[str],
    extra: str,
    *,
    drop_first: bool = True,
) -> None:
    """An empty temporary ``name`` (dropped at commit) with ``columns`` typed as in the
    target, plus ``extra`` (``NULL::type AS name``)."""
    if drop_first:
        await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
    await conn.execute(
        sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {}, {} FROM {} WITH NO DATA").format(
            sql.Identifier(name), _ids(columns), sql.SQL(extra), _table(target)
        )
    )


async def _copy_rows(
    conn: AsyncConnection[Any],
    target: MergeTarget,
    rows: Iterable[Sequence[object]],
    on_progress: ProgressCallback | None,
    progress_every: int,
    names: _Names,
    first_ordinal: int,
) -> int:
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(names.stage), _ids((*target.keys, *target.columns, "_ord"))
    )
    count = 0
    async with conn.cursor() as cur, cur.copy(copy_sql) as copy:
        for count, row in enumerate(rows, start=1):
            await copy.write_row((*row, first_ordinal + count))
            if on_progress is not None and count % progress_every == 0:
                await on_progress(count)
    if on_progress is not None and count % progress_every != 0:
        await on_progress(count)
    return count


def _seal_sql(target: MergeTarget, rows: sql.Composable, names: _Names) -> sql.Composed:
    return sql.SQL(
        """
        CREATE TEMP TABLE {src} ON COMMIT DROP AS
        SELECT DISTINCT ON ({keys}) {all_cols} FROM {rows} ORDER BY {keys}, _ord DESC
        """
    ).format(
        src=sql.Identifier(names.src),
        keys=_ids(target.keys),
        all_cols=_ids((*target.keys, *target.columns)),
        rows=rows,
    )


def _key_match(left: str, right: str, keys: Iterable[str]) -> sql.Composed:
    return sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(left, k), sql.Identifier(right, k)) for k in keys
    )


def _sampled_keys_exist_sql(target: MergeTarget, names: _Names) -> sql.Composed:
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
        table=_table(target),
        match=_key_match("t", "s", target.keys),
    )


def _insert_all_sql(target: MergeTarget, names: _Names) -> sql.Composed:
    all_cols = _ids((*target.keys, *target.columns))
    return sql.SQL("INSERT INTO {table} ({cols}) SELECT {cols} FROM {src}").format(
        table=_table(target), cols=all_cols, src=sql.Identifier(names.src)
    )


def _log_all_created_sql(target: MergeTarget, names: _Names) -> sql.Composed:
    return sql.SQL("INSERT INTO {changes} SELECT {keys}, 'created' FROM {src}").format(
        changes=sql.Identifier(names.changes),
        keys=_ids(target.keys),
        src=sql.Identifier(names.src),
    )


def _upsert_sql(target: MergeTarget, names: _Names) -> sql.Composed:
    # New keys are inserted first (ON CONFLICT DO NOTHING neither waits on nor locks an
    # existing row), so a new row costs one index probe. Only the keys that were not
    # inserted are compared with the table, so unchanged rows are neither rewritten nor
    # locked; each is looked up through the key index (the LIMIT keeps the planner from
    # turning the LATERAL into a hash join that reads the whole table); when every key was
    # new, the counts in ``rest`` skip that step at once. A key another transaction added
    # in between is still updated where it differs: the later batch wins.
    keys, cols = target.keys, target.columns
    all_cols = (*keys, *cols)
    sets = [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in cols]
    if target.touch_column:
        sets.append(sql.SQL("{} = now()").format(sql.Identifier(target.touch_column)))
    return sql.SQL(
        """
        WITH ins AS (
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
        logged AS (
            INSERT INTO {changes} SELECT *, 'created' FROM ins UNION ALL SELECT * FROM up
            RETURNING op
        )
        SELECT (SELECT count(*) FROM {src}),
               count(*) FILTER (WHERE op = 'created'),
               count(*) FILTER (WHERE op = 'updated')
        FROM logged
        """
    ).format(
        keys=_ids(keys),
        all_cols=_ids(all_cols),
        src=sql.Identifier(names.src),
        table=_table(target),
        sets=sql.SQL(", ").join(sets),
        t_cols=_qualified("t", cols),
        ex_cols=_qualified("excluded", cols),
        s_cols=_qualified("s", all_cols),
        s_content=_qualified("s", cols),
        t_content=_qualified("t", all_cols),
        join=_key_match("t", "s", keys),
        ins_match=_key_match("i", "s", keys),
        first_key=sql.Identifier(keys[0]),
        t_keys=_qualified("t", keys),
        changes=sql.Identifier(names.changes),
    )


def _delete_sql(
    target: MergeTarget, scope: Mapping[str, object], keep: sql.Composable | None, names: _Names
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
        table=_table(target),
        where=where,
        keys=_ids(target.keys),
        src=sql.Identifier(names.src),
        match=_key_match("g", "t", target.keys),
        t_keys=_qualified("t", target.keys),
        changes=sql.Identifier(names.changes),
    )


class Merge:
    """One merge inside the caller's transaction: stage rows, then :meth:`apply` them.

    Rows come from Python (:meth:`copy` stages them in the temporary table ``_merge_stage``:
    key columns, content columns, then ``_ord``; later ordinals win over earlier rows with
    the same key; :meth:`seal` deduplicates them), or from a query over data already in
    PostgreSQL (:meth:`stage_query` stages and deduplicates in one pass).
    """

    def __init__(
        self,
        conn: AsyncConnection[Any],
        target: MergeTarget,
        tag: str = "",
        *,
        unique_tag: bool = False,
    ) -> None:
        """``unique_tag``: no other merge of this transaction used ``tag`` (a job id), so
        its tables cannot exist yet and are created without dropping them first."""
        self.conn = conn
        self.target = target
        self.names = _Names.tagged(tag)
        self.staged = 0
        self._sealed = False
        self._stage_made = False
        self._src_may_exist = not unique_tag
        self._unique_tag = unique_tag

    @property
    def stage_columns(self) -> sql.Composed:
        """The staging table's columns, in the order an INSERT into it must give them."""
        return _ids((*self.target.keys, *self.target.columns, "_ord"))

    async def begin(self) -> Merge:
        # The dedupe sort and the diff join hold one batch; PostgreSQL's default 4 MB
        # work_mem would spill a multi-megabyte batch to disk. Only for this transaction.
        await self.conn.execute(sql.SQL("SET LOCAL work_mem = {}").format(sql.Literal(WORK_MEM)))
        await _create_work_table(
            self.conn,
            self.target,
            self.names.changes,
            self.target.keys,
            "NULL::text AS op",
            drop_first=not self._unique_tag,
        )
        return self

    async def _ensure_stage(self) -> None:
        """The staging table, made on first use (:meth:`stage_query` needs none)."""
        if not self._stage_made:
            columns = (*self.target.keys, *self.target.columns)
            await _create_work_table(
                self.conn, self.target, self.names.stage, columns, "NULL::bigint AS _ord"
            )
            self._stage_made = True

    async def copy(
        self,
        rows: Iterable[Sequence[object]],
        on_progress: ProgressCallback | None = None,
        progress_every: int = 1000,
    ) -> int:
        """Stream rows (key columns then content columns) into staging with COPY."""
        await self._ensure_stage()
        # Ordinals continue across calls: a later page's row wins over an earlier one's.
        self.staged += await _copy_rows(
            self.conn, self.target, rows, on_progress, progress_every, self.names, self.staged
        )
        return self.staged

    async def stage_query(self, query: sql.Composable, params: Mapping[str, object]) -> int:
        """Stage and seal in one pass the rows of ``query``, a SELECT over data already in
        PostgreSQL (such as a pushed batch stored as jsonb) whose columns are named like the
        target's key and content columns, plus ``_ord``. They are deduplicated into key
        order straight away, with no staging table; returns how many distinct keys that
        left, which is also what ``staged`` counts then."""
        await self._drop_source()
        rows = sql.SQL("({}) AS rows").format(query)
        cur = await self.conn.execute(_seal_sql(self.target, rows, self.names), dict(params))
        self.staged += cur.rowcount
        self._sealed = True
        return cur.rowcount

    async def seal(self) -> None:
        """Staging is complete: deduplicate it (later rows win) into key order, which
        also makes the index insertions of :meth:`apply` local. Touches only temporary
        tables, so a worker seals one request while the previous one is still writing."""
        if self._sealed:
            return
        await self._ensure_stage()
        await self._drop_source()
        stage = sql.Identifier(self.names.stage)
        await self.conn.execute(_seal_sql(self.target, stage, self.names))
        self._sealed = True

    async def _insert_if_all_new(self) -> int | None:
        """When every key is new (a first push), insert the rows with a plain INSERT: one
        index descent per row, where the upsert's conflict check and speculative insertion
        cost twice as much. A sample of keys that already exist skips the attempt; a key
        found on insertion (also one another transaction is inserting) rolls it back to a
        savepoint. Returns the rows inserted, or None when the upsert must run."""
        cur = await self.conn.execute(_sampled_keys_exist_sql(self.target, self.names))
        row = await cur.fetchone()
        if row is not None and row[0]:
            return None
        try:
            async with self.conn.transaction():
                insert = _insert_all_sql(self.target, self.names)
                inserted = (await self.conn.execute(insert)).rowcount
                await self.conn.execute(_log_all_created_sql(self.target, self.names))
        except errors.UniqueViolation:
            return None
        return inserted

    async def _drop_source(self) -> None:
        if self._src_may_exist:
            await self.conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.names.src))
            )
        self._src_may_exist = True

    async def apply(
        self,
        *,
        delete_scope: Mapping[str, object] | None = None,
        delete_keep: sql.Composable | None = None,
        keep_params: Mapping[str, object] | None = None,
    ) -> MergeResult:
        """Upsert the staged rows; only new or changed rows reach the table, and unchanged
        ones are neither rewritten nor locked. When every key is new, a plain INSERT does
        it (see :meth:`_insert_if_all_new`).

        With ``delete_scope`` (a full sync), rows of the table matching that scope but not
        staged are deleted, except rows matching ``delete_keep`` (a condition on alias
        ``t``, with ``keep_params``), e.g. rows only a source that failed could vouch for.
        """
        await self.seal()
        conn, target = self.conn, self.target
        # A small batch goes straight to the upsert: one statement, where the all-new
        # attempt costs four round trips (sample, savepoint, insert, release) to save little.
        inserted = await self._insert_if_all_new() if self.staged >= ALL_NEW_MIN_ROWS else None
        if inserted is not None:
            distinct, created, updated = inserted, inserted, 0
        else:
            cur = await conn.execute(_upsert_sql(target, self.names))
            distinct, created, updated = (await cur.fetchone()) or (0, 0, 0)
        deleted = 0
        if delete_scope is not None:
            params = {**delete_scope, **(keep_params or {})}
            delete = _delete_sql(target, delete_scope, delete_keep, self.names)
            cur = await conn.execute(delete, params)
            (deleted,) = (await cur.fetchone()) or (0,)
        return MergeResult(
            staged=self.staged,
            distinct=distinct,
            created=created,
            updated=updated,
            deleted=deleted,
        )


async def merge(
    conn: AsyncConnection[Any],
    target: MergeTarget,
    rows: Iterable[Sequence[object]],
    *,
    delete_scope: Mapping[str, object] | None = None,
    delete_keep: sql.Composable | None = None,
    keep_params: Mapping[str, object] | None = None,
    on_progress: ProgressCallback | None = None,
    progress_every: int = 1000,
) -> MergeResult:
    """Merge ``rows`` (key columns then content columns, in ``target`` order) into the table.

    Rows are streamed into staging with COPY, so memory stays bounded; see :class:`Merge`.
    """
    staging = await Merge(conn, target).begin()
    await staging.copy(rows, on_progress, progress_every)
    return await staging.apply(
        delete_scope=delete_scope, delete_keep=delete_keep, keep_params=keep_params
    )
