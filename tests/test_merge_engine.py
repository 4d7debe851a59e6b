"""The shared merge engine against real PostgreSQL: exact counts, last write wins, deletions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from cli.embedded import EmbeddedPostgres
from db.merge import (
    CHANGES_TABLE,
    Merge,
    MergeResult,
    MergeTarget,
    direct_statement,
    merge,
    merge_query,
)

TARGET = MergeTarget("items", keys=("tenant", "id"), columns=("name", "price", "attrs"))


@pytest.fixture(scope="module")
def database(postgres: EmbeddedPostgres) -> Iterator[str]:
    url = postgres.create_database("merge_engine")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE items (tenant text, id int, name text, price numeric, attrs jsonb, "
            "updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tenant, id))"
        )
    yield url


@pytest.fixture(autouse=True)
def empty_table(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("TRUNCATE items")


def run(
    url: str, rows: list[tuple[Any, ...]], **kwargs: Any
) -> tuple[MergeResult, list[tuple[Any, ...]]]:
    async def go() -> tuple[MergeResult, list[tuple[Any, ...]]]:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            async with conn.transaction():
                result = await merge(conn, TARGET, iter(rows), **kwargs)
                cur = await conn.execute(f"SELECT tenant, id, op FROM {CHANGES_TABLE} ORDER BY 2")
                changes = await cur.fetchall()
            return result, changes

    return asyncio.run(go())


def table(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT tenant, id, name FROM items ORDER BY tenant, id").fetchall()


def test_counts_are_exact_and_only_changed_rows_are_rewritten(database: str) -> None:
    rows = [("a", i, f"n{i}", i, '{"k": 1}') for i in range(1, 1001)]
    first, _ = run(database, rows)
    assert (first.created, first.updated, first.unchanged, first.deleted) == (1000, 0, 0, 0)

    with psycopg.connect(database) as conn:
        before: dict[int, str] = dict(conn.execute("SELECT id, xmin::text FROM items").fetchall())
    changed = [(t, i, n + "!" if i % 10 == 0 else n, p, a) for t, i, n, p, a in rows]
    second, changes = run(database, changed)

    assert (second.created, second.updated, second.unchanged) == (0, 100, 900)
    assert {op for _, _, op in changes} == {"updated"} and len(changes) == 100
    with psycopg.connect(database) as conn:
        after: dict[int, str] = dict(conn.execute("SELECT id, xmin::text FROM items").fetchall())
    rewritten = {i for i in before if before[i] != after[i]}
    assert rewritten == {i for i in range(10, 1001, 10)}


@pytest.mark.parametrize("existing_id", [1, 2500, 5000], ids=["first", "middle", "last"])
def test_new_rows_with_one_existing_key_anywhere_are_counted_exactly(
    database: str, existing_id: int
) -> None:
    """New rows go in with a plain INSERT unless a sample finds an existing key; one key
    that exists (and is likely not sampled) must fall back to the upsert without a trace."""
    run(database, [("a", existing_id, "old", 1, None)])
    rows = [("a", i, "new", 1, None) for i in range(1, 5001)]
    result, changes = run(database, rows)
    assert (result.created, result.updated, result.unchanged) == (4999, 1, 0)
    assert len(changes) == 5000 and ("a", existing_id, "updated") in changes
    with psycopg.connect(database) as conn:
        names = conn.execute("SELECT name, count(*) FROM items GROUP BY name").fetchall()
    assert names == [("new", 5000)]


def test_null_and_json_changes_count_as_changes(database: str) -> None:
    run(database, [("a", 1, "x", None, None), ("a", 2, "y", 5, '{"a": 1}')])
    result, _ = run(database, [("a", 1, "x", 1, None), ("a", 2, "y", 5, '{"a": 2}')])
    assert (result.updated, result.unchanged) == (2, 0)
    same, _ = run(database, [("a", 1, "x", 1, None), ("a", 2, "y", 5, '{"a":2}')])
    assert (same.updated, same.unchanged) == (0, 2)


def test_duplicate_keys_in_one_batch_last_one_wins(database: str) -> None:
    result, _ = run(database, [("a", 1, "first", 1, None), ("a", 1, "second", 1, None)])
    assert (result.staged, result.distinct, result.created) == (2, 1, 1)
    assert table(database) == [("a", 1, "second")]


def test_a_later_copy_call_wins_over_an_earlier_one(database: str) -> None:
    """Pages staged by separate copy() calls: the later page's row for a key wins."""

    async def go() -> MergeResult:
        async with (
            await psycopg.AsyncConnection.connect(database) as conn,
            conn.transaction(),
        ):
            staging = await Merge(conn, TARGET).begin()
            await staging.copy(iter([("a", 1, "page one", 1, None), ("a", 2, "x", 1, None)]))
            await staging.copy(iter([("a", 1, "page two", 1, None)]))
            return await staging.apply()

    result = asyncio.run(go())
    assert (result.staged, result.distinct, result.created) == (3, 2, 2)
    assert table(database) == [("a", 1, "page two"), ("a", 2, "x")]


def test_full_sync_deletes_only_missing_rows_within_scope(database: str) -> None:
    run(database, [("a", 1, "x", 1, None), ("a", 2, "y", 1, None), ("b", 1, "z", 1, None)])
    result, changes = run(database, [("a", 2, "y", 1, None)], delete_scope={"tenant": "a"})
    assert (result.deleted, result.unchanged) == (1, 1)
    assert changes == [("a", 1, "deleted")]
    assert table(database) == [("a", 2, "y"), ("b", 1, "z")]


def test_progress_is_reported_while_staging(database: str) -> None:
    seen: list[int] = []

    async def on_progress(done: int) -> None:
        seen.append(done)

    rows = [("a", i, "n", 1, None) for i in range(2500)]
    run(database, rows, on_progress=on_progress)
    assert seen == [1000, 2000, 2500], "every 1000 rows, and once at the end"


def test_a_failed_transaction_leaves_the_table_untouched(database: str) -> None:
    run(database, [("a", 1, "kept", 1, None)])

    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(database) as conn, conn.transaction():
            await merge(conn, TARGET, iter([("a", 1, "lost", 1, None), ("a", 2, "new", 1, None)]))
            raise RuntimeError("apply failed")

    with pytest.raises(RuntimeError):
        asyncio.run(go())
    assert table(database) == [("a", 1, "kept")]


@pytest.mark.parametrize(
    ("earlier_name", "expected"),
    [("older", (0, 1, 0)), ("same", (0, 0, 1))],
    ids=["earlier-write-differs", "earlier-write-equal"],
)
def test_a_row_written_between_seal_and_apply_still_takes_the_later_batch(
    database: str, earlier_name: str, expected: tuple[int, int, int]
) -> None:
    """The worker seals request N+1 while request N still writes (read-ahead): a key that
    was new at seal time may exist by apply time. The later batch must still win."""

    async def go() -> tuple[MergeResult, list[tuple[Any, ...]]]:
        async with (
            await psycopg.AsyncConnection.connect(database) as later,
            later.transaction(),
        ):
            staging = await Merge(later, TARGET).begin()
            await staging.copy(iter([("a", 1, "same", 1, None), ("a", 2, "same", 1, None)]))
            await staging.seal()  # ("a", 1) is new now
            # The earlier request commits ("a", 1) in between, on its own connection.
            await asyncio.to_thread(run, database, [("a", 1, earlier_name, 1, None)])
            result = await staging.apply()
            cur = await later.execute(f"SELECT tenant, id, op FROM {CHANGES_TABLE} ORDER BY 2")
            return result, await cur.fetchall()

    result, changes = asyncio.run(go())
    assert (result.created - 1, result.updated, result.unchanged) == expected
    assert table(database) == [("a", 1, "same"), ("a", 2, "same")]
    assert ("a", 2, "created") in changes


def test_a_key_another_transaction_is_inserting_waits_for_it_then_the_later_batch_wins(
    database: str,
) -> None:
    """The plain insert of new keys meets a key another transaction has inserted but not
    committed: it waits; once that commits, the batch falls back to the upsert and wins."""

    async def go() -> tuple[MergeResult, list[tuple[Any, ...]]]:
        async with (
            await psycopg.AsyncConnection.connect(database) as earlier,
            await psycopg.AsyncConnection.connect(database) as later,
            await psycopg.AsyncConnection.connect(database, autocommit=True) as watch,
        ):
            await earlier.execute("INSERT INTO items VALUES ('a', 2, 'earlier', 1, NULL)")
            later_pid = later.info.backend_pid

            async def merge_later() -> tuple[MergeResult, list[tuple[Any, ...]]]:
                async with later.transaction():
                    rows = [("a", 1, "later", 1, None), ("a", 2, "later", 1, None)]
                    result = await merge(later, TARGET, iter(rows))
                    cur = await later.execute(f"SELECT tenant, id, op FROM {CHANGES_TABLE}")
                    return result, await cur.fetchall()

            task = asyncio.create_task(merge_later())
            deadline = asyncio.get_running_loop().time() + 20
            while True:  # until the later merge waits on the earlier insert's lock
                cur = await watch.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (later_pid,)
                )
                row = await cur.fetchone()
                if row is not None and row[0] == "Lock":
                    break
                assert not task.done(), "the merge did not wait for the uncommitted key"
                assert asyncio.get_running_loop().time() < deadline, "no lock wait seen"
                await asyncio.sleep(0.01)
            await earlier.commit()
            return await asyncio.wait_for(task, 20)

    result, changes = asyncio.run(go())
    assert (result.created, result.updated, result.unchanged) == (1, 1, 0)
    assert sorted(changes) == [("a", 1, "created"), ("a", 2, "updated")]
    assert table(database) == [("a", 1, "later"), ("a", 2, "later")]


# The direct merge (db.merge.merge_query): a query's rows, one statement, no work tables.
DIRECT_ROWS = sql.SQL(
    "SELECT tenant, id, name, price, attrs, _ord FROM jsonb_to_recordset(%(rows)s) "
    "AS r(tenant text, id int, name text, price numeric, attrs jsonb, _ord int)"
)
DIRECT = direct_statement(
    TARGET,
    DIRECT_ROWS,
    lambda changed: sql.SQL("INSERT INTO item_changes SELECT * FROM {}").format(changed),
)


def run_direct(url: str, rows: list[tuple[Any, ...]]) -> tuple[MergeResult, list[tuple[Any, ...]]]:
    records = [
        {"tenant": t, "id": i, "name": n, "price": p, "attrs": a, "_ord": k}
        for k, (t, i, n, p, a) in enumerate(rows)
    ]

    async def go() -> tuple[MergeResult, list[tuple[Any, ...]]]:
        async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
            await conn.execute(
                "CREATE TEMP TABLE item_changes (tenant text, id int, op text) ON COMMIT DROP"
            )
            result = await merge_query(conn, DIRECT, {"rows": Jsonb(records)})
            cur = await conn.execute("SELECT tenant, id, op FROM item_changes ORDER BY 2")
            return result, await cur.fetchall()

    return asyncio.run(go())


def test_the_direct_merge_of_a_small_batch_agrees_with_the_staged_one(database: str) -> None:
    """Batch after batch (new rows with a duplicate key, some changed, a JSON and a NULL
    change, all unchanged), the one-statement merge of small batches gives the counts,
    the changes and the table the staged merge gives."""
    first: list[tuple[Any, ...]] = [("a", i, f"n{i}", i, {"k": i}) for i in range(1, 41)]
    first.append(("a", 7, "dup", 7, None))
    second: list[tuple[Any, ...]] = [
        (t, i, n + "!" if i % 10 == 0 else n, p, a) for t, i, n, p, a in first[:40]
    ]
    second += [("a", 3, "n3", None, {"k": 3}), ("a", 4, "n4", 4, {"k": 5}), ("b", 1, "x", 1, None)]
    batches: list[list[tuple[Any, ...]]] = [first, second, second]
    outcomes: dict[str, list[tuple[tuple[int, ...], list[Any], list[Any]]]] = {}
    for engine in ("staged", "direct"):
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("TRUNCATE items")
        seen: list[tuple[tuple[int, ...], list[Any], list[Any]]] = []
        for rows in batches:
            if engine == "staged":
                as_text = [
                    (*row[:4], None if row[4] is None else json.dumps(row[4])) for row in rows
                ]
                result, changes = run(database, as_text)
            else:
                result, changes = run_direct(database, rows)
            counts = (result.distinct, result.created, result.updated, result.unchanged)
            seen.append((counts, sorted(changes), table(database)))
        outcomes[engine] = seen
    assert outcomes["direct"] == outcomes["staged"]
    assert [counts for counts, _, _ in outcomes["direct"]] == [
        (40, 40, 0, 0),  # 41 rows, key 7 twice: the later one is kept
        # 4 names changed, key 7 back to its first name, key 3's price NULL, key 4's
        # attrs (both given twice: the later row counts); b/1 new
        (41, 1, 7, 33),
        (41, 0, 0, 41),
    ]
    assert ("a", 7, "dup") in outcomes["direct"][0][2]
