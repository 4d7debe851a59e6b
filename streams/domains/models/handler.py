"""The models domain: pull four catalogues, unify, merge into model_catalog, keep history."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from psycopg import AsyncConnection, sql

from db.merge import CHANGES_TABLE, Merge, MergeResult, MergeTarget
from schemas.events import ChangeEvent
from schemas.jobs import JobCounts
from schemas.models import SourceModel, SourceReport, UnifiedModel
from schemas.settings import Settings
from streams.domains.base import DomainError, JobContext, Outcome
from streams.domains.models.http import new_client
from streams.domains.models.sources import Answers, all_failed_message, fetch_answers, read_answers
from streams.domains.models.state import (
    RESULT_KEY,
    CatalogueState,
    last_sync,
    table_signature,
    unchanged_since,
)
from streams.domains.models.unify import unify

COLUMNS = (
    "provider", "name", "context_length", "max_output", "input_price", "output_price",
    "input_modalities", "output_modalities", "capabilities", "release_date", "open_weights",
    "status", "sources", "source_ids", "extras",
)  # fmt: skip
TARGET = MergeTarget("model_catalog", keys=("id",), columns=COLUMNS)

# One history row per change; unchanged models are never copied.
SNAPSHOT_CHANGES = sql.SQL(
    """
    INSERT INTO model_snapshots (sync_id, model_id, change, provider, source, data)
    SELECT %(job_id)s, c.id,
           CASE c.op WHEN 'created' THEN 'added' WHEN 'updated' THEN 'changed' ELSE 'removed' END,
           m.provider, m.sources ->> 0, to_jsonb(m) - 'created_at' - 'updated_at'
    FROM {changes} c LEFT JOIN model_catalog m ON m.id = c.id
    RETURNING model_id, change, data
    """
).format(changes=sql.Identifier(CHANGES_TABLE))
# Models only a source that failed this time could vouch for are kept, not deleted.
KEEP_IF_FROM_FAILED_SOURCE = sql.SQL("t.sources ?| %(failed_sources)s")
REMOVED_SAMPLE = 20


@dataclass
class Catalogue:
    """What the sources answered; read and unified only when it has to be (see ``state``)."""

    answers: Answers
    reports: list[SourceReport] = field(default_factory=list)
    records: list[SourceModel] | None = None
    models: list[UnifiedModel] | None = None

    @property
    def fingerprint(self) -> str:
        return self.answers.fingerprint

    @property
    def failed(self) -> list[str]:
        return [r.source for r in self.reports if r.state != "ok"]

    @property
    def read_records(self) -> int:
        """Records the sources gave (known from the reports, read or not)."""
        return sum(r.models for r in self.reports if r.state == "ok")

    def read(self) -> list[SourceModel]:
        if self.records is None:
            self.records, self.reports = read_answers(self.answers)
            for answer in self.answers.answers:
                answer.pages = []  # the parsed documents are several times the records' size
        return self.records


@dataclass
class StagedCatalogue:
    catalogue: Catalogue
    staging: Merge | None  # None: the input looked unchanged when staging; apply checks again


def _row(model: UnifiedModel) -> tuple[object, ...]:
    def js(value: Any) -> str:
        return orjson.dumps(value).decode()

    return (
        model.id, model.provider, model.name, model.context_length, model.max_output,
        model.input_price, model.output_price, js(model.input_modalities),
        js(model.output_modalities), js(model.capabilities), model.release_date,
        model.open_weights, model.status, js(model.sources), js(model.source_ids),
        js(model.extras),
    )  # fmt: skip


def _report_line(report: SourceReport) -> str:
    detail = f"{report.models} models"
    if report.pages > 1:
        detail += f", {report.pages} pages"
    line = f"{report.source}: {report.state} ({detail}, {report.duration_ms} ms)"
    if not report.message:
        return line
    # Source errors already name their source.
    return f"{line}: {report.message.removeprefix(report.source).lstrip(': ')}"


def _sources_result(reports: list[SourceReport]) -> dict[str, Any]:
    """Each source's report, for the job's ``result`` (a failed job's too)."""
    return {"sources": [r.model_dump(mode="json") for r in reports]}


class ModelsHandler:
    """A full sync every time: what no source lists any more leaves the catalogue. When the
    sources answer as they did for the last successful sync and no model was written since,
    the full diff's answer is known (nothing changed) and is given without reading, unifying
    or comparing (see ``state``)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def prepare(self, ctx: JobContext) -> Catalogue:
        await ctx.emitter.log("Fetching models.dev, OpenRouter, Hugging Face, Artificial Analysis")
        async with new_client(self._settings) as client:
            answers = await fetch_answers(self._settings, client)
        unread = answers.unread_reports()
        if unread is not None:  # no source answered: nothing to read
            await _report(ctx, unread)
        return Catalogue(answers)

    async def stage(
        self, ctx: JobContext, prepared: Catalogue, conn: AsyncConnection[Any]
    ) -> StagedCatalogue:
        # Read-only here: a previous sync may still be applying, so apply decides for good.
        last = await last_sync(conn)
        reused = None
        if last is not None and last.read(prepared.fingerprint):
            reused = prepared.answers.reports_as(last.reports)
        if reused is None:
            prepared.read()
        else:
            prepared.reports = reused
        await _report(ctx, prepared.reports)
        if reused is not None and await unchanged_since(conn, prepared.fingerprint) is not None:
            return StagedCatalogue(catalogue=prepared, staging=None)
        return StagedCatalogue(catalogue=prepared, staging=await _stage(ctx, prepared, conn))

    async def apply(
        self, ctx: JobContext, staged: StagedCatalogue, conn: AsyncConnection[Any]
    ) -> Outcome:
        prepared = staged.catalogue
        last = await unchanged_since(conn, prepared.fingerprint)
        if last is not None and last.state is not None:
            await ctx.emitter.log(
                f"Sources unchanged since sync {last.job_id} ({prepared.read_records} source"
                f" records, {last.models} models) and no model written since: nothing to compare"
            )
            await ctx.emitter.progress(last.models, last.models)
            nothing = MergeResult(last.models, last.models, created=0, updated=0, deleted=0)
            return _outcome(prepared, last.models, nothing, [], last.state)
        staging = staged.staging or await _stage(ctx, prepared, conn)
        assert prepared.models is not None  # unified by _stage
        failed = prepared.failed
        merged = await staging.apply(
            delete_scope={},
            delete_keep=KEEP_IF_FROM_FAILED_SOURCE if failed else None,
            keep_params={"failed_sources": failed},
        )
        cur = await conn.execute(SNAPSHOT_CHANGES, {"job_id": ctx.job_id})
        history = await cur.fetchall()
        changes = [
            ChangeEvent(
                request_id=ctx.request.request_id,
                domain="models",
                job_id=ctx.job_id,
                change=change,
                key=model_id,
                data=data,
            )
            for model_id, change, data in history
        ]
        state = CatalogueState(input=prepared.fingerprint, table=await table_signature(conn))
        return _outcome(prepared, len(prepared.models), merged, changes, state)


def _outcome(
    prepared: Catalogue,
    total: int,
    merged: MergeResult,
    changes: list[ChangeEvent],
    state: CatalogueState,
) -> Outcome:
    removed = sorted(c.key for c in changes if c.change == "removed")
    summary = [
        f"Applying updates: {merged.created} new, {merged.updated} updated, "
        f"{merged.deleted} removed, {merged.unchanged} unchanged",
    ]
    if removed:
        sample = ", ".join(removed[:REMOVED_SAMPLE])
        extra = len(removed) - REMOVED_SAMPLE
        more = f" and {extra} more" if extra > 0 else ""
        summary.append(f"Removed (no source lists them any more): {sample}{more}")
    if prepared.failed:
        summary.append(
            f"Partial sync: {', '.join(prepared.failed)} did not answer; their models were kept"
        )
    return Outcome(
        counts=JobCounts(
            discovered=total,
            created=merged.created,
            updated=merged.updated,
            deleted=merged.deleted,
            unchanged=merged.unchanged,
            errors=sum(1 for r in prepared.reports if r.state == "failed"),
        ),
        result={
            "models": total,
            "removed": removed[:100],
            **_sources_result(prepared.reports),
            RESULT_KEY: state.as_result(),
        },
        summary=summary,
        changes=changes,
    )


async def _report(ctx: JobContext, reports: list[SourceReport]) -> None:
    """Log each source's line; fail the job when none succeeded."""
    for report in reports:
        await ctx.emitter.log(_report_line(report))
    failure = all_failed_message(reports)
    if failure is not None:
        raise DomainError(failure, result=_sources_result(reports))


async def _stage(ctx: JobContext, prepared: Catalogue, conn: AsyncConnection[Any]) -> Merge:
    """Read (when not yet done) and unify the records, COPY the models into staging."""
    records = prepared.read()
    models = prepared.models = unify(records)
    await ctx.emitter.log(f"Unified {len(records)} source records into {len(models)} models")
    total = len(models)

    async def on_progress(done: int) -> None:
        await ctx.emitter.progress(done, total)

    staging = await Merge(conn, TARGET).begin()
    rows: Iterator[tuple[object, ...]] = (_row(m) for m in models)
    await staging.copy(rows, on_progress)
    await staging.seal()
    return staging
