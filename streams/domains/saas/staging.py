"""Staging a saas run in its transaction: listed pages and change feeds, a merge per collection."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from db.merge import Merge, MergeTarget
from schemas.saas import ConnectorSpec, ResourceSpec
from streams.domains.saas.connector import CLOCK_MARGIN_S, Change, Entity

ENTITIES = MergeTarget(
    table="supasaasy.entities",
    keys=("app_key", "collection_key", "external_id"),
    columns=("api_version", "raw_payload", "archived_at"),
)
DELETED = "_saas_deleted"  # keys an incremental run deletes
REPLACED = "_saas_replaced"  # parents whose full set of children this run has
# Changes with a time (unix seconds; 0: unknown, never stale) older than the latest change
# applied to their object (or as old as a deletion), or, for an object a full sync lists
# (``covered``), than its collection's cursor (the start of its last sync, which saw every
# change before it) less the clock margin.
STALE = """
SELECT c.collection_key, c.external_id
FROM unnest(%(collections)s::text[], %(ids)s::text[], %(occurred)s::bigint[],
            %(deleted)s::boolean[], %(covered)s::boolean[])
     AS c (collection_key, external_id, occurred, deleted, covered)
LEFT JOIN saas_change_times t
       ON t.app_key = %(app_key)s AND t.collection_key = c.collection_key
      AND t.external_id = c.external_id
LEFT JOIN sync_state s
       ON s.domain = 'saas' AND s.scope = %(app_key)s AND s.collection = c.collection_key
WHERE c.occurred > 0
  AND (c.occurred < t.occurred
       OR (c.occurred = t.occurred AND t.deleted AND NOT c.deleted)
       OR (c.covered AND s.cursor ~ '^[0-9]{1,18}$'
           AND c.occurred < s.cursor::bigint - %(margin)s))
"""
RECORD_TIMES = """
INSERT INTO saas_change_times AS t (app_key, collection_key, external_id, occurred, deleted)
SELECT %(app_key)s, c.collection_key, c.external_id, c.occurred, c.deleted
FROM unnest(%(collections)s::text[], %(ids)s::text[], %(occurred)s::bigint[],
            %(deleted)s::boolean[])
     AS c (collection_key, external_id, occurred, deleted)
WHERE c.occurred > 0
ON CONFLICT (app_key, collection_key, external_id) DO UPDATE SET
    deleted = CASE WHEN EXCLUDED.occurred > t.occurred THEN EXCLUDED.deleted
                   WHEN EXCLUDED.occurred = t.occurred THEN t.deleted OR EXCLUDED.deleted
                   ELSE t.deleted END,
    occurred = GREATEST(t.occurred, EXCLUDED.occurred)
"""
# Changes of one app are applied one job at a time even while partitions move.
APP_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('syncbus.saas.app:' || %s, 0))"


def covered_by_listing(change: Change, sync_from: int | None) -> bool:
    """Whether a full sync lists the change's object: every object, or with ``sync_from``
    only those created since (a deletion's object is not known: not covered)."""
    if sync_from is None:
        return True
    entity = change.entity
    return entity is not None and entity.created is not None and entity.created >= sync_from


@dataclass
class CollectionStage:
    """One collection's merge (its temporary tables are tagged with the collection)."""

    resource: ResourceSpec
    merge: Merge
    rows: int = 0


@dataclass
class RunStage:
    """Every collection's stage of one run, plus the incremental run's deletions."""

    conn: AsyncConnection[Any]
    app_key: str
    spec: ConnectorSpec
    sync_from: int | None = None
    stages: dict[str, CollectionStage] = field(default_factory=dict)
    pending: list[Change] = field(default_factory=list)

    async def stage_for(self, resource: ResourceSpec) -> CollectionStage:
        stage = self.stages.get(resource.collection_key)
        if stage is None:
            merge = await Merge(self.conn, ENTITIES, tag=f"_{resource.collection_key}").begin()
            stage = CollectionStage(resource, merge)
            self.stages[resource.collection_key] = stage
        return stage

    async def add(self, entities: Iterable[Entity]) -> int:
        """Stream entities into their collections' staging tables; how many."""
        by_collection: dict[str, list[Entity]] = {}
        for entity in entities:
            by_collection.setdefault(entity.resource.collection_key, []).append(entity)
        for batch in by_collection.values():
            stage = await self.stage_for(batch[0].resource)
            await stage.merge.copy(self._rows(batch))
            stage.rows += len(batch)
        return sum(len(b) for b in by_collection.values())

    def _rows(self, batch: Sequence[Entity]) -> Iterable[tuple[object, ...]]:
        for e in batch:
            payload = Jsonb(e.payload)
            key = (self.app_key, e.resource.collection_key, e.external_id)
            yield (*key, e.api_version, payload, e.archived_at)

    async def drop(self, resource: ResourceSpec) -> None:
        """Forget what was staged for a collection whose fetch failed."""
        stage = self.stages.pop(resource.collection_key, None)
        if stage is not None:
            await self.conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {}, {}").format(
                    sql.Identifier(stage.merge.names.stage),
                    sql.Identifier(stage.merge.names.changes),
                )
            )

    def keep_changes(self, changes: Sequence[Change]) -> None:
        """An incremental run's or a webhook's changes, oldest first, staged by
        ``stage_changes`` once the scope's previous job has committed (what it stored
        decides which are stale)."""
        self.pending.extend(changes)

    async def stage_changes(self) -> list[tuple[str, str]]:
        """Stage the kept changes: each object's last state wins; a deletion is staged in
        ``_saas_deleted``, a parent's full set of children in ``_saas_replaced`` (its other
        children go). A change older than the latest one applied to its object, or than
        its collection's cursor, is skipped (Stripe delivers events in no set order and
        retries them for days); the keys skipped."""
        if not self.pending:
            return []
        await self.conn.execute(APP_LOCK, (self.app_key,))
        last: dict[tuple[str, str], Change] = {}
        for change in self.pending:
            last[(change.resource.collection_key, change.external_id)] = change
        self.pending = []
        stale = await self._stale(last)
        for key in stale:
            del last[key]
        await self.conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {DELETED} (collection_key text, external_id text)"
            " ON COMMIT DROP"
        )
        await self.conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {REPLACED} (collection_key text, parent_id text)"
            " ON COMMIT DROP"
        )
        upserts: list[Entity] = []
        deleted: list[tuple[str, str]] = []
        replaced: list[tuple[str, str]] = []
        for (collection, external_id), change in last.items():
            if change.entity is None:
                deleted.append((collection, external_id))
                continue
            upserts.append(change.entity)
            if change.children is not None:
                upserts.extend(change.children)
                kinds = self.spec.children_of(change.resource.resource_type)
                replaced += [(kind.collection_key, external_id) for kind in kinds]
        await self._copy(DELETED, ("collection_key", "external_id"), deleted)
        await self._copy(REPLACED, ("collection_key", "parent_id"), replaced)
        await self.add(upserts)
        await self.conn.execute(RECORD_TIMES, self._times(last))
        return stale

    def _times(self, changes: dict[tuple[str, str], Change]) -> dict[str, Any]:
        keys = list(changes)
        return {
            "app_key": self.app_key,
            "collections": [collection for collection, _ in keys],
            "ids": [external_id for _, external_id in keys],
            "occurred": [changes[key].occurred for key in keys],
            "deleted": [changes[key].entity is None for key in keys],
            "covered": [covered_by_listing(changes[key], self.sync_from) for key in keys],
        }

    async def _stale(self, changes: dict[tuple[str, str], Change]) -> list[tuple[str, str]]:
        if not changes:
            return []
        cur = await self.conn.execute(STALE, {**self._times(changes), "margin": CLOCK_MARGIN_S})
        return [
            (str(collection), str(external_id)) for collection, external_id in await cur.fetchall()
        ]

    async def _copy(
        self, table: str, columns: Sequence[str], rows: Sequence[tuple[str, str]]
    ) -> None:
        if not rows:
            return
        query = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        async with self.conn.cursor().copy(query) as copy:
            for row in rows:
                await copy.write_row(row)
