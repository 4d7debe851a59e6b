"""The merge engine every domain uses: stage rows, set-based diff, exact counts.

Rows come from Python (streamed with COPY) or from SQL over data already in PostgreSQL
(a pushed batch stored as jsonb). Callers run it inside their own transaction. With
:class:`Merge`, changed keys land in the temporary table ``_merge_changes`` (key columns +
``op``: created/updated/deleted) until the transaction ends, so a domain can write its
audit rows from it in the same transaction; :func:`merge_query` merges a small batch in
one statement with no temporary tables, its audit rows written by that statement.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, errors, sql

from db.merge_sql import (
    CHANGES_TABLE,
    MergeTarget,
    WorkTables,
    column_list,
    delete_sql,
    direct_upsert_sql,
    insert_all_sql,
    log_all_created_sql,
    sampled_keys_exist_sql,
    seal_sql,
    table_of,
    upsert_sql,
)

__all__ = [
    "CHANGES_TABLE",
    "Merge",
    "MergeResult",
    "MergeTarget",
    "direct_statement",
    "merge",
    "merge_query",
]

WORK_MEM = "128MB"
ALL_NEW_MIN_ROWS = 1000  # from this many staged rows on, try a plain INSERT first

ProgressCallback = Callable[[int], Awaitable[None]]


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


async def _create_work_table(
    conn: AsyncConnection[Any],
    target: MergeTarget,
    name: str,
    columns: Sequence[str],
    extra: str,
) -> None:
    """An empty temporary ``name`` (dropped at commit) with ``columns`` typed as in the
    target, plus ``extra`` (``NULL::type AS name``)."""
    await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
    await conn.execute(
        sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {}, {} FROM {} WITH NO DATA").format(
            sql.Identifier(name), column_list(columns), sql.SQL(extra), table_of(target)
        )
    )


async def _copy_rows(
    conn: AsyncConnection[Any],
    target: MergeTarget,
    rows: Iterable[Sequence[object]],
    on_progress: ProgressCallback | None,
    progress_every: int,
    names: WorkTables,
    first_ordinal: int,
) -> int:
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(names.stage), column_list((*target.keys, *target.columns, "_ord"))
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
    ) -> None:
        self.conn = conn
        self.target = target
        self.names = WorkTables.tagged(tag)
        self.staged = 0
        self._sealed = False
        self._stage_made = False

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
        cur = await self.conn.execute(seal_sql(self.target, rows, self.names), dict(params))
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
        await self.conn.execute(seal_sql(self.target, stage, self.names))
        self._sealed = True

    async def _insert_if_all_new(self) -> int | None:
        """When every key is new (a first push), insert the rows with a plain INSERT: one
        index descent per row, where the upsert's conflict check and speculative insertion
        cost twice as much. A sample of keys that already exist skips the attempt; a key
        found on insertion (also one another transaction is inserting) rolls it back to a
        savepoint. Returns the rows inserted, or None when the upsert must run."""
        cur = await self.conn.execute(sampled_keys_exist_sql(self.target, self.names))
        row = await cur.fetchone()
        if row is not None and row[0]:
            return None
        try:
            async with self.conn.transaction():
                insert = insert_all_sql(self.target, self.names)
                inserted = (await self.conn.execute(insert)).rowcount
                await self.conn.execute(log_all_created_sql(self.target, self.names))
        except errors.UniqueViolation:
            return None
        return inserted

    async def _drop_source(self) -> None:
        await self.conn.execute(
            sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.names.src))
        )

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
            cur = await conn.execute(upsert_sql(target, self.names))
            distinct, created, updated = (await cur.fetchone()) or (0, 0, 0)
        deleted = 0
        if delete_scope is not None:
            params = {**delete_scope, **(keep_params or {})}
            delete = delete_sql(target, delete_scope, delete_keep, self.names)
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


async def merge_query(
    conn: AsyncConnection[Any],
    statement: bytes,
    params: Mapping[str, object],
) -> MergeResult:
    """Run a :func:`db.merge_sql.direct_upsert_sql` statement (rendered once by the caller,
    so that its text is the same every time and psycopg prepares it): a small batch
    merged with no work tables to create and drop, in one round trip."""
    cur = await conn.execute(statement, dict(params))
    distinct, created, updated = (await cur.fetchone()) or (0, 0, 0)
    return MergeResult(
        staged=distinct, distinct=distinct, created=created, updated=updated, deleted=0
    )


def direct_statement(
    target: MergeTarget,
    rows: sql.Composable,
    log_changes: Callable[[sql.Identifier], sql.Composable] | None = None,
) -> bytes:
    """The statement :func:`merge_query` runs, rendered (see ``direct_upsert_sql``). The
    parameters of ``rows`` and of ``log_changes`` share one namespace: a name both use is
    bound to one value."""
    return direct_upsert_sql(target, rows, log_changes).as_bytes(None)
