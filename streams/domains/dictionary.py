"""The dictionary domain (seed 004): upsert pushed entries, bump the version, write audit rows.

A batch is already in PostgreSQL as jsonb (``sync_payloads``), so it is validated and staged
set-based in SQL, in one pass: no entry is parsed or copied in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from db.merge import Merge, MergeTarget, direct_statement, merge_query
from schemas.dictionary import (
    CEFR_LEVELS,
    ENTRY_FIELDS,
    HEADWORD_MAX,
    MAX_RANK,
    DictionaryBatchHeader,
)
from schemas.jobs import JobCounts
from streams.domains.base import DomainError, JobContext, Outcome

CONTENT = (*(f.column for f in ENTRY_FIELDS.values()), "extra")
TARGET = MergeTarget("dictionary_entries", keys=("lang", "word"), columns=CONTENT)
HEADWORD = "headword"  # the field named by the batch's ``lang``

HEADER_SQL = """
SELECT header, entries_type, entries_count FROM sync_payloads WHERE job_id = %(job_id)s
"""
AUDIT_FROM_CHANGES = sql.SQL(
    """
    INSERT INTO dictionary_audit_log (lang, word, action, actor_username, job_id, meta)
    SELECT c.lang, c.word, c.op, %(actor)s, %(job_id)s, %(meta)s FROM {changes} c
    """
)
BUMP_VERSION = """
INSERT INTO dictionary_versions AS v (lang, version) VALUES (%(lang)s, 1)
ON CONFLICT (lang) DO UPDATE SET version = v.version + 1, updated_at = now()
RETURNING version
"""
CURRENT_VERSION = "SELECT version FROM dictionary_versions WHERE lang = %(lang)s"


@dataclass(frozen=True)
class Check:
    """One entry rule: ``condition`` true means the entry breaks it. ``{v}`` in it is the
    field's jsonb value, ``{t}`` the same as text (``->>``); the entry itself is ``e``."""

    condition: str
    field: str | None  # None: the headword (the field named by ``lang``)
    message: str


def _entry_checks() -> list[Check]:
    """ENTRY_FIELDS as SQL, in the order they are reported (first broken rule wins)."""
    levels = ", ".join(f"'{level}'" for level in CEFR_LEVELS)
    checks = [
        Check("jsonb_typeof(e) <> 'object'", "", "must be an object"),
        Check(
            "jsonb_typeof({v}) IS DISTINCT FROM 'string'", None, "is required and must be a string"
        ),
        Check("length(btrim({t})) = 0", None, "must not be empty"),
        Check(
            f"length({{t}}) > {HEADWORD_MAX}", None, f"must be at most {HEADWORD_MAX} characters"
        ),
    ]
    for name, spec in ENTRY_FIELDS.items():
        if spec.kind == "rank":
            checks.append(
                Check("jsonb_typeof({v}) NOT IN ('number', 'null')", name, "must be an integer")
            )
            checks.append(
                Check(
                    f"({{t}})::numeric %% 1 <> 0 OR ({{t}})::numeric NOT BETWEEN 0 AND {MAX_RANK}",
                    name,
                    f"must be a whole number from 0 to {MAX_RANK}",
                )
            )
            continue
        checks.append(
            Check("jsonb_typeof({v}) NOT IN ('string', 'null')", name, "must be a string")
        )
        if spec.kind == "level":
            checks.append(Check(f"{{t}} NOT IN ({levels})", name, f"must be one of {levels}"))
        elif spec.max_length is not None:
            checks.append(
                Check(
                    f"length({{t}}) > {spec.max_length}",
                    name,
                    f"must be at most {spec.max_length} characters",
                )
            )
    return checks


CHECKS = _entry_checks()


def _column(field: str | None, kind: str) -> str:
    """The single pass's column with a field's value as ``jsonb`` or as ``text``."""
    name = HEADWORD if field is None else field
    return sql.Identifier(f"{kind}:{name}").as_string(None)


def _rule_case() -> sql.Composed:
    branches = []
    for i, check in enumerate(CHECKS):
        if check.field == "":
            condition = check.condition
        else:
            v, t = _column(check.field, "jsonb"), _column(check.field, "text")
            condition = check.condition.format(v=v, t=t)
        branches.append(sql.SQL("WHEN {} THEN {}").format(sql.SQL(condition), sql.Literal(i)))
    return sql.SQL("CASE {} END").format(sql.SQL(" ").join(branches))


def _checked_sql() -> sql.Composed:
    """Every stored entry, each field looked up once (as ``jsonb`` and as ``text``), with
    ``rule``: the first rule it breaks, or NULL. The ``OFFSET 0`` fences keep PostgreSQL
    from inlining the lookups into every rule and from filtering before the rules ran."""
    fields: list[tuple[str | None, sql.Composable]] = [(None, sql.SQL("%(lang)s"))]
    fields += [(name, sql.Literal(name)) for name in ENTRY_FIELDS]
    lookups: list[sql.Composable] = []
    for field, key in fields:
        lookups.append(sql.SQL("t.e -> {} AS {}").format(key, sql.SQL(_column(field, "jsonb"))))
        lookups.append(sql.SQL("t.e ->> {} AS {}").format(key, sql.SQL(_column(field, "text"))))
    return sql.SQL(
        """
        SELECT looked.*, {rule} AS rule FROM (
            SELECT (t.ord - 1)::int AS idx, t.e, {lookups}
            FROM sync_payloads p,
                 jsonb_array_elements(p.body -> 'entries') WITH ORDINALITY t(e, ord)
            WHERE p.job_id = %(job_id)s
            OFFSET 0
        ) looked
        OFFSET 0
        """
    ).format(rule=_rule_case(), lookups=sql.SQL(", ").join(lookups))


def _stage_sql() -> sql.Composed:
    """The entries that break no rule, typed as ``dictionary_entries`` columns, for
    :meth:`Merge.stage_query`. One streaming pass: nothing is materialised before the
    merge's dedupe sort."""
    typed: list[sql.Composable] = [sql.SQL("%(lang)s")]
    for field in (None, *ENTRY_FIELDS):
        if field is not None and ENTRY_FIELDS[field].kind == "rank":
            # Through text: a JSON null is then SQL NULL on every PostgreSQL major (17
            # refuses to cast a jsonb null to a number; 18 gives NULL).
            typed.append(sql.SQL("({})::int").format(sql.SQL(_column(field, "text"))))
        else:
            typed.append(sql.SQL("btrim({})").format(sql.SQL(_column(field, "text"))))
    typed.append(sql.SQL("nullif(e - %(known)s::text[], '{}'::jsonb)"))
    named = [
        sql.SQL("{} AS {}").format(value, sql.Identifier(column))
        for value, column in zip(typed, (*TARGET.keys, *TARGET.columns), strict=True)
    ]
    query = "SELECT {typed}, idx AS _ord FROM ({checked}) checked WHERE rule IS NULL"
    return sql.SQL(query).format(typed=sql.SQL(", ").join(named), checked=_checked_sql())


STAGE_ENTRIES = _stage_sql()
# Run on a small batch before it is applied, and on a staged one when fewer keys were
# staged than the batch has entries: duplicates, or a broken entry left out.
FIRST_BROKEN = (
    sql.SQL("SELECT idx, rule FROM ({checked}) checked WHERE rule IS NOT NULL ORDER BY idx LIMIT 1")
    .format(checked=_checked_sql())
    .as_bytes(None)
)
# A batch smaller than this is applied in one statement, audit rows included, with no
# temporary tables (db.merge.merge_query): for the small batches of a sender that pushes
# as it goes, creating and dropping them cost more than the rest of the write.
DIRECT_MAX_ENTRIES = 1000
APPLY_SMALL = direct_statement(
    TARGET, STAGE_ENTRIES, lambda changed: AUDIT_FROM_CHANGES.format(changes=changed)
)


@dataclass
class Batch:
    header: DictionaryBatchHeader
    size: int


@dataclass
class StagedBatch:
    batch: Batch
    staging: Merge | None  # None: a small batch, checked, applied by APPLY_SMALL
    params: dict[str, Any]  # job_id, lang and the known fields, for every statement


class DictionaryHandler:
    """A batch is all or nothing: one bad entry fails the job and nothing is written.

    Consecutive queued batches of one language are applied in one transaction
    (``groups_by_scope``), each still its own job; so each stages into temporary tables
    of its own (tagged with its job id).
    """

    groups_by_scope = True

    async def prepare(self, ctx: JobContext) -> None:
        """Nothing to fetch: the batch is in PostgreSQL and is checked by ``stage``."""

    async def stage(
        self, ctx: JobContext, prepared: None, conn: AsyncConnection[Any]
    ) -> StagedBatch:
        batch = await self._read_header(ctx, conn)
        lang = batch.header.lang
        params = {"job_id": ctx.job_id, "lang": lang, "known": [lang, *ENTRY_FIELDS]}
        staging = None
        if batch.size >= DIRECT_MAX_ENTRIES:
            staging = await Merge(conn, TARGET, tag=f"_{ctx.job_id.hex}").begin()
        if staging is None or await staging.stage_query(STAGE_ENTRIES, params) < batch.size:
            broken = await (await conn.execute(FIRST_BROKEN, params)).fetchone()
            if broken is not None:
                index, rule = broken
                check = CHECKS[rule]
                field = lang if check.field is None else check.field
                where = f"'{field}' " if field else ""
                raise DomainError(f"entry {index}: {where}{check.message}")
        await ctx.emitter.log(f"Validated {batch.size} entries for language '{lang}'")
        # Held, not written at once: the job's final transaction writes it (saves one).
        await ctx.emitter.emit("progress", {"processed": batch.size, "total": batch.size})
        return StagedBatch(batch=batch, staging=staging, params=params)

    async def apply(
        self, ctx: JobContext, staged: StagedBatch, conn: AsyncConnection[Any]
    ) -> Outcome:
        batch, params = staged.batch, staged.params
        lang = batch.header.lang
        meta = {"source": "internal_sync", "requestId": batch.header.request_id,
                "sender": batch.header.source}  # fmt: skip
        audit = {**params, "actor": batch.header.actor_username, "meta": Jsonb(meta)}
        if staged.staging is None:
            merged = await merge_query(conn, APPLY_SMALL, audit)
        else:
            merged = await staged.staging.apply()
            if merged.created + merged.updated:
                changes = sql.Identifier(staged.staging.names.changes)
                await conn.execute(AUDIT_FROM_CHANGES.format(changes=changes), audit)
        changed = merged.created + merged.updated
        if changed:
            cur = await conn.execute(BUMP_VERSION, params)
        else:
            cur = await conn.execute(CURRENT_VERSION, params)
        version_row = await cur.fetchone()
        version = int(version_row[0]) if version_row else 0
        return Outcome(
            counts=JobCounts(
                discovered=batch.size,
                created=merged.created,
                updated=merged.updated,
                unchanged=merged.unchanged,
            ),
            result={"lang": lang, "version": version, "entries": batch.size},
            summary=[
                f"Applying updates: {merged.created} new, {merged.updated} updated, "
                f"{merged.unchanged} unchanged",
                f"Dictionary '{lang}' is at version {version}",
            ],
        )

    async def _read_header(self, ctx: JobContext, conn: AsyncConnection[Any]) -> Batch:
        row = await (await conn.execute(HEADER_SQL, {"job_id": ctx.job_id})).fetchone()
        if row is None:
            raise DomainError("the request carries no payload")
        header, entries_type, size = row
        if not isinstance(header, dict):
            raise DomainError("invalid payload: the batch must be a JSON object")
        header.setdefault("requestId", ctx.request.request_id)
        try:
            parsed = DictionaryBatchHeader.model_validate(header)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "payload"
            raise DomainError(f"invalid payload: '{where}' {first['msg'].lower()}") from None
        if entries_type != "array" or size == 0:
            raise DomainError("invalid payload: 'entries' must be a non-empty array")
        return Batch(header=parsed, size=int(size))
