"""Staging a saas run in its transaction: listed pages and change feeds, a merge per collection."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from db.merge import Merge, MergeTarget
from schemas.saas import ConnectorSpec, ResourceSpec
from streams.domains.saas.connector import Change, Entity

ENTITIES = MergeTarget(
    table="supasaasy.entities",
    keys=("app_key", "collection_key", "external_id"),
    columns=("api_version", "raw_payload", "archived_at"),
)
DELETED = "_saas_deleted"  # keys an incremental run deletes
REPLACED = "_saas_replaced"  # parents whose full set of children this run has


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
    stages: dict[str, CollectionStage] = field(default_factory=dict)

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

    async def changes(self, changes: Sequence[Change]) -> int:
        """An incremental run's changes, oldest first: each object's last state wins; a
        deletion is staged in ``_saas_deleted``, a parent's full set of children in
        ``_saas_replaced`` (its other children go)."""
        last: dict[tuple[str, str], Change] = {}
        for change in changes:
            last[(change.resource.collection_key, change.external_id)] = change
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
        return len(last)

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
