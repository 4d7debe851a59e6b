"""Fetching a saas run into its stages: full listings, the change feed, or one pushed event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemas.saas import ResourceSpec
from streams.domains.base import JobContext
from streams.domains.saas.connector import (
    CLOCK_MARGIN_S,
    Change,
    Entity,
    IncrementalUnavailable,
)
from streams.domains.saas.fetch import listed_pages
from streams.domains.saas.plan import CollectionPlan, Plan
from streams.domains.saas.staging import RunStage, covered_by_listing
from streams.sources.http import SourceError


class Collector:
    """Fills a run's stages, collection by collection; a collection whose fetch fails is
    marked failed (with its children) and its stage dropped, and the others go on."""

    def __init__(self, ctx: JobContext, plan: Plan, run: RunStage, chains: int) -> None:
        self.ctx = ctx
        self.plan = plan
        self.run = run
        self.chains = chains
        self.connector = plan.connector
        self.tasks_done = 0  # top-level collections (supasaasy's tasks), children with them

    def _family(self, parent: CollectionPlan) -> list[CollectionPlan]:
        kids = self.plan.spec.children_of(parent.resource.resource_type)
        return [parent, *(c for c in self.plan.collections if c.resource in kids)]

    async def _finished(self, collection: CollectionPlan) -> None:
        self.tasks_done += 1
        await self.ctx.emitter.progress(
            sum(c.processed for c in self.plan.collections),
            None,
            {"tasks_done": self.tasks_done, "collection": collection.resource.collection_key},
            force=True,
        )

    async def _failed(self, collection: CollectionPlan, message: str) -> None:
        for member in self._family(collection):
            member.error = (
                message
                if member is collection
                else (f"synced with {collection.resource.collection_key}, which failed: {message}")
            )
            await self.run.drop(member.resource)
        await self.ctx.emitter.log(f"{collection.resource.collection_key} failed: {message}")

    def _count(self, entities: Sequence[Entity]) -> None:
        for entity in entities:
            plan = self.plan.collection(entity.resource)
            if plan is not None:
                plan.processed += 1

    async def full(self) -> None:
        """Every top-level collection in full mode, listed page by page into its stage."""
        for collection in self.plan.collections:
            if collection.mode != "full" or collection.resource.parent or collection.error:
                continue
            try:
                await self._list(collection.resource)
            except SourceError as exc:
                await self._failed(collection, str(exc))
                continue
            await self.ctx.emitter.log(
                f"{collection.resource.collection_key}: {collection.processed} listed"
            )
            await self._finished(collection)

    async def _list(self, resource: ResourceSpec) -> None:
        listing = self.connector.listing(resource, self.plan.sync_from)
        label = resource.collection_key
        async for items in listed_pages(
            self.connector.client, listing, label=label, lo=self.plan.sync_from, chains=self.chains
        ):
            entities: list[Entity] = []
            for obj in items:
                entities.append(self.connector.normalise(resource, obj))
                entities.extend(self.connector.children(resource, obj))
                async for more in self.connector.more_children(resource, obj):
                    entities.extend(more)
            self._count(entities)
            await self.run.add(entities)
            total = sum(c.processed for c in self.plan.collections)
            await self.ctx.emitter.progress(total, None, {"tasks_done": self.tasks_done})

    async def incremental(self) -> None:
        """The change feed since the oldest cursor, applied oldest first. A feed that cannot
        serve this run (too old a cursor) turns the run into a full one, and says so."""
        chosen = [
            c for c in self.plan.collections if c.mode == "incremental" and not c.resource.parent
        ]
        if not chosen:
            return
        since = min(c.cursor or 0 for c in chosen)
        changes: list[Change] = []
        try:
            async for page in self.connector.changes([c.resource for c in chosen], since):
                changes.extend(page)
        except IncrementalUnavailable as exc:
            note = f"incremental sync unavailable: {exc}; running a full sync instead"
            self.plan.notes.append(note)
            await self.ctx.emitter.log(note[:1].upper() + note[1:])
            for collection in chosen:
                for member in self._family(collection):
                    member.mode = "full"
            return
        except SourceError as exc:
            for collection in chosen:
                await self._failed(collection, str(exc))
            return
        # The feed is read from the oldest cursor: a collection with a later one already
        # saw the changes before it (its last sync did).
        fresh = [c for c in reversed(changes) if not self._seen_before(c)]  # oldest first
        await self._stage_changes(fresh)
        for collection in chosen:
            if collection.error is not None:
                continue
            await self.ctx.emitter.log(
                f"{collection.resource.collection_key}: {collection.processed} changed"
            )
            await self._finished(collection)

    def _seen_before(self, change: Change) -> bool:
        collection = self.plan.collection(change.resource)
        cursor = collection.cursor if collection is not None else None
        return (
            cursor is not None
            and 0 < change.occurred < cursor - CLOCK_MARGIN_S
            and covered_by_listing(change, self.plan.sync_from)
        )

    async def pushed_event(self, event: dict[str, Any]) -> None:
        """A webhook's event, applied alone (cursors stay where they are)."""
        change = self.connector.change_of(event)
        if change is None:
            await self.ctx.emitter.log(f"Event type {event.get('type')} is not handled")
            return
        await self._stage_changes([change])
        await self.ctx.emitter.log(f"Received {event.get('type')} {change.external_id}")

    async def _stage_changes(self, changes: list[Change]) -> None:
        seen: set[str] = set()
        unique: list[Change] = []
        for listed in changes:
            if listed.event_id in seen:
                continue
            seen.add(listed.event_id)
            if listed.entity is not None and listed.children is None:
                try:
                    listed = await self._with_all_children(listed)  # noqa: PLW2901
                except SourceError as exc:  # its collection fails; the others go on
                    collection = self.plan.collection(listed.resource)
                    if collection is not None and collection.error is None:
                        await self._failed(collection, str(exc))
                    continue
            unique.append(listed)
        staged = []
        for change in unique:
            collection = self.plan.collection(change.resource)
            if collection is not None and collection.error is not None:
                continue
            if collection is not None:
                collection.processed += 1
            staged.append(change)
        self.run.keep_changes(staged)

    async def _with_all_children(self, change: Change) -> Change:
        """A parent whose event could not embed all its children: fetch them."""
        assert change.entity is not None
        if not self.plan.spec.children_of(change.resource.resource_type):
            return change
        kids: list[Entity] = []
        async for page in self.connector.more_children(change.resource, change.entity.payload):
            kids.extend(page)
        return Change(
            change.event_id,
            change.occurred,
            change.resource,
            change.external_id,
            change.entity,
            tuple(kids),
        )
