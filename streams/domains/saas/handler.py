"""The saas domain (seed 001): one app's collections, fetched and merged in one transaction.

``prepare`` reads the app and each collection's cursor; ``stage`` streams the listed pages
(full) or the change feed (incremental) into a staging table per collection, page by page;
``apply`` merges them into ``supasaasy.entities``, deletes what a full sync no longer saw
(logging each deletion), and advances the cursors of the collections that succeeded. A
collection that fails keeps its previous state and does not hide the others' counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql

from schemas.jobs import JobCounts
from schemas.settings import Settings
from streams.domains.base import DomainError, JobContext, Outcome
from streams.domains.saas.collect import Collector
from streams.domains.saas.plan import CollectionPlan, Plan, make_plan
from streams.domains.saas.staging import DELETED, REPLACED, RunStage

log = logging.getLogger(__name__)

DELETE_CHANGED = """
WITH gone AS (
    DELETE FROM supasaasy.entities e USING {deleted} d
    WHERE e.app_key = %(app_key)s AND d.collection_key = %(collection)s
      AND e.collection_key = d.collection_key AND e.external_id = d.external_id
    RETURNING e.app_key, e.collection_key, e.external_id
)
INSERT INTO {changes} SELECT *, 'deleted' FROM gone
"""
DELETE_ORPHANED_CHILDREN = """
WITH gone AS (
    DELETE FROM supasaasy.entities e USING {replaced} r
    WHERE e.app_key = %(app_key)s AND r.collection_key = %(collection)s
      AND e.collection_key = r.collection_key
      AND e.raw_payload ->> %(parent_field)s = r.parent_id
      AND NOT EXISTS (SELECT 1 FROM {src} s WHERE s.external_id = e.external_id)
    RETURNING e.app_key, e.collection_key, e.external_id
)
INSERT INTO {changes} SELECT *, 'deleted' FROM gone
"""
AUDIT_DELETIONS = """
INSERT INTO audit_log (event_id, domain, action, job_id, data)
SELECT gen_random_uuid(), 'saas', 'entity.deleted', %(job_id)s,
       jsonb_build_object('app_key', app_key, 'collection_key', collection_key,
                          'external_id', external_id)
FROM {changes} WHERE op = 'deleted'
"""
COUNT_DELETED = "SELECT count(*) FROM {changes} WHERE op = 'deleted'"
ADVANCE_STATE = """
INSERT INTO sync_state (domain, scope, collection, cursor, last_synced_at)
VALUES ('saas', %(app_key)s, %(collection)s, %(cursor)s, %(synced_at)s)
ON CONFLICT (domain, scope, collection)
DO UPDATE SET cursor = EXCLUDED.cursor, last_synced_at = EXCLUDED.last_synced_at,
              updated_at = now()
"""
STORED_EVENT = "SELECT body FROM sync_payloads WHERE job_id = %s"
KEEP_BEFORE_SYNC_FROM = sql.SQL("coalesce((t.raw_payload ->> 'created')::bigint, 0) < {}").format(
    sql.Placeholder("sync_from")
)


@dataclass
class Staged:
    plan: Plan
    run: RunStage


class SaasHandler:
    """Syncs app instances; the connector comes from the app's ``connector``."""

    def __init__(self, settings: Settings, engine: Any) -> None:
        self._settings = settings
        self._engine = engine

    async def prepare(self, ctx: JobContext) -> Plan:
        request = ctx.request
        asked = list(request.params.get("resource_types") or [])
        plan = await make_plan(self._engine, self._settings, request.scope, request.mode, asked)
        modes = ", ".join(f"{c.resource.collection_key} {c.mode}" for c in plan.collections)
        await ctx.emitter.log(f"Syncing {request.scope} ({plan.spec.name}): {modes}")
        return plan

    async def stage(self, ctx: JobContext, plan: Plan, conn: AsyncConnection[Any]) -> Staged:
        run = RunStage(conn, plan.app["app_key"], plan.spec, plan.sync_from)
        collector = Collector(ctx, plan, run, self._settings.saas_parallel_chains)
        try:
            event = (
                await _pushed_event(ctx, conn) if ctx.request.params.get("stripe_event") else None
            )
            if event is not None:
                await collector.pushed_event(event)
            else:
                await collector.incremental()
                await collector.full()
        finally:
            await plan.connector.client.http.aclose()
        return Staged(plan, run)

    async def apply(self, ctx: JobContext, staged: Staged, conn: AsyncConnection[Any]) -> Outcome:
        plan, run = staged.plan, staged.run
        pushed = bool(ctx.request.params.get("stripe_event"))
        stale = await run.stage_changes()
        if stale:
            shown = ", ".join(
                f"{collection} {external_id}" for collection, external_id in stale[:5]
            )
            more = f" and {len(stale) - 5} more" if len(stale) > 5 else ""
            note = f"skipped {len(stale)} changes older than what is stored: {shown}{more}"
            plan.notes.append(note)
            await ctx.emitter.log(note[:1].upper() + note[1:])
        reports = [
            await self._apply_collection(ctx, plan, run, c, conn, advance=not pushed)
            for c in plan.collections
        ]
        failed = [c for c in plan.collections if c.error]
        result = {
            "mode": plan.requested_mode,
            "collections": reports,
            "notes": plan.notes,
        }
        if failed and len(failed) == len(plan.collections):
            raise DomainError(
                f"{failed[0].resource.collection_key}: {failed[0].error}", result=result
            )
        counts = JobCounts(
            discovered=sum(c.processed for c in plan.collections),
            created=sum(r["created"] for r in reports),
            updated=sum(r["updated"] for r in reports),
            deleted=sum(r["deleted"] for r in reports),
            unchanged=sum(r["unchanged"] for r in reports),
            errors=len(failed),
        )
        summary = [
            f"{r['collection_key']}: {r['created']} created, {r['updated']} updated, "
            f"{r['deleted']} deleted"
            + (f", failed: {r['error_messages'][0]}" if r["errors"] else "")
            for r in reports
        ]
        problem = "; ".join(f"{c.resource.collection_key}: {c.error}" for c in failed)
        return Outcome(counts=counts, result=result, summary=summary, problem=problem or None)

    async def _apply_collection(
        self,
        ctx: JobContext,
        plan: Plan,
        run: RunStage,
        collection: CollectionPlan,
        conn: AsyncConnection[Any],
        *,
        advance: bool,
    ) -> dict[str, Any]:
        resource = collection.resource
        report: dict[str, Any] = {
            "collection_key": resource.collection_key,
            "mode": collection.mode,
            "created": 0, "updated": 0, "deleted": 0, "unchanged": 0,
            "errors": 1 if collection.error else 0,
            "error_messages": [collection.error] if collection.error else [],
            "processed": collection.processed,
        }  # fmt: skip
        if collection.error:
            return report
        if collection.mode == "full" and not ctx.request.params.get("stripe_event"):
            stage = await run.stage_for(resource)  # an empty listing deletes every row
            scope = {"app_key": plan.app["app_key"], "collection_key": resource.collection_key}
            keep = KEEP_BEFORE_SYNC_FROM if plan.sync_from else None
            merged = await stage.merge.apply(
                delete_scope=scope, delete_keep=keep, keep_params={"sync_from": plan.sync_from}
            )
        else:
            stage = await run.stage_for(resource)
            merged = await stage.merge.apply()
            await self._incremental_deletions(plan, collection, stage.merge.names, conn)
        changes = sql.Identifier(stage.merge.names.changes)
        deleted = await (
            await conn.execute(sql.SQL(COUNT_DELETED).format(changes=changes))
        ).fetchone()
        await conn.execute(sql.SQL(AUDIT_DELETIONS).format(changes=changes), {"job_id": ctx.job_id})
        report.update(
            created=merged.created,
            updated=merged.updated,
            deleted=int(deleted[0]) if deleted else 0,
            unchanged=merged.unchanged,
        )
        if advance:
            await conn.execute(
                ADVANCE_STATE,
                {
                    "app_key": plan.app["app_key"],
                    "collection": resource.collection_key,
                    "cursor": str(int(plan.started.timestamp())),
                    "synced_at": plan.started,
                },
            )
        return report

    async def _incremental_deletions(
        self, plan: Plan, collection: CollectionPlan, names: Any, conn: AsyncConnection[Any]
    ) -> None:
        params = {"app_key": plan.app["app_key"], "collection": collection.resource.collection_key}
        changes, src = sql.Identifier(names.changes), sql.Identifier(names.src)
        if await run_exists(conn, DELETED):
            query = sql.SQL(DELETE_CHANGED).format(changes=changes, deleted=sql.Identifier(DELETED))
            await conn.execute(query, params)
        if collection.resource.parent_field and await run_exists(conn, REPLACED):
            replaced = sql.Identifier(REPLACED)
            await conn.execute(
                sql.SQL(DELETE_ORPHANED_CHILDREN).format(
                    changes=changes, src=src, replaced=replaced
                ),
                {**params, "parent_field": collection.resource.parent_field},
            )


async def _pushed_event(ctx: JobContext, conn: AsyncConnection[Any]) -> dict[str, Any] | None:
    """The webhook's event: stored with its job (``sync_payloads``), or inline in a request
    published to Kafka directly. None when it is gone (a replay after the payload's
    retention): the run then reads the change feed instead, and says so."""
    request = ctx.request
    if isinstance(request.payload, dict):
        return request.payload
    if request.payload_ref is not None:
        cur = await conn.execute(STORED_EVENT, (request.payload_ref.job_id,))
        row = await cur.fetchone()
        if row is not None and isinstance(row[0], dict):
            return row[0]
    await ctx.emitter.log("The event is no longer stored; reading the change feed instead")
    return None


def _summary(report: dict[str, Any]) -> str:
    line = (
        f"{report['collection_key']}: {report['created']} created, "
        f"{report['updated']} updated, {report['deleted']} deleted"
    )
    return f"{line}; failed: {report['error_messages'][0]}" if report["errors"] else line


async def run_exists(conn: AsyncConnection[Any], table: str) -> bool:
    """Whether this transaction made the temporary table ``table``."""
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"pg_temp.{table}",))
    row = await cur.fetchone()
    return bool(row and row[0])
