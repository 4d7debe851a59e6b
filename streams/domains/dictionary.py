"""The dictionary domain (seed 004): upsert pushed entries, bump the version, write audit rows.

A batch is already in PostgreSQL as jsonb (``sync_payloads``), so it is validated and staged
set-based in SQL: no entry is parsed or copied in Python. The entries are unpacked once into
a temporary table that validation and every staged chunk read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from db.merge import CHANGES_TABLE, MergeTarget, SqlSource, merge
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
CHUNK = 1000  # staged per statement; a progress event follows each
BATCH_TABLE = "_dictionary_batch"

UNPACK = sql.SQL(
    """
    CREATE TEMP TABLE {batch} ON COMMIT DROP AS
    SELECT (t.ord - 1)::int AS idx, t.e
    FROM sync_payloads p, jsonb_array_elements(p.body -> 'entries') WITH ORDINALITY t(e, ord)
    WHERE p.job_id = %(job_id)s
    """
).format(batch=sql.Identifier(BATCH_TABLE))
INDEX_BATCH = sql.SQL("CREATE INDEX ON {} (idx)").format(sql.Identifier(BATCH_TABLE))

HEADER_SQL = """
SELECT body - 'entries', jsonb_typeof(body -> 'entries'),
       CASE WHEN jsonb_typeof(body -> 'entries') = 'array'
            THEN jsonb_array_length(body -> 'entries') ELSE 0 END
FROM sync_payloads WHERE job_id = %(job_id)s
"""
AUDIT_FROM_CHANGES = sql.SQL(
    """
    INSERT INTO dictionary_audit_log (lang, word, action, actor_username, job_id, meta)
    SELECT c.lang, c.word, c.op, %(actor)s, %(job_id)s, %(meta)s FROM {changes} c
    """
).format(changes=sql.Identifier(CHANGES_TABLE))
BUMP_VERSION = """
INSERT INTO dictionary_versions AS v (lang, version) VALUES (%(lang)s, 1)
ON CONFLICT (lang) DO UPDATE SET version = v.version + 1, updated_at = now()
RETURNING version
"""
CURRENT_VERSION = "SELECT version FROM dictionary_versions WHERE lang = %(lang)s"


@dataclass(frozen=True)
class Check:
    """One entry rule: ``condition`` (SQL over entry ``e``) true means the entry breaks it."""

    condition: str
    field: str | None  # None: the headword (the field named by ``lang``)
    message: str


def _entry_checks() -> list[Check]:
    """ENTRY_FIELDS as SQL, in the order they are reported (first broken rule wins)."""
    levels = ", ".join(f"'{level}'" for level in CEFR_LEVELS)
    checks = [
        Check("jsonb_typeof(e) <> 'object'", "", "must be an object"),
        Check(
            "jsonb_typeof(e -> %(lang)s) IS DISTINCT FROM 'string'",
            None,
            "is required and must be a string",
        ),
        Check("length(btrim(e ->> %(lang)s)) = 0", None, "must not be empty"),
        Check(
            f"length(e ->> %(lang)s) > {HEADWORD_MAX}",
            None,
            f"must be at most {HEADWORD_MAX} characters",
        ),
    ]
    for name, spec in ENTRY_FIELDS.items():
        value = f"e -> '{name}'"
        if spec.kind == "rank":
            checks.append(
                Check(
                    f"jsonb_typeof({value}) NOT IN ('number', 'null')", name, "must be an integer"
                )
            )
            checks.append(
                Check(
                    f"(({value})::numeric %% 1 <> 0 "
                    f"OR ({value})::numeric NOT BETWEEN 0 AND {MAX_RANK})",
                    name,
                    f"must be a whole number from 0 to {MAX_RANK}",
                )
            )
            continue
        checks.append(
            Check(f"jsonb_typeof({value}) NOT IN ('string', 'null')", name, "must be a string")
        )
        if spec.kind == "level":
            checks.append(
                Check(f"(e ->> '{name}') NOT IN ({levels})", name, f"must be one of {levels}")
            )
        elif spec.max_length is not None:
            checks.append(
                Check(
                    f"length(e ->> '{name}') > {spec.max_length}",
                    name,
                    f"must be at most {spec.max_length} characters",
                )
            )
    return checks


CHECKS = _entry_checks()
# CASE evaluates its branches in order, so later casts only see values earlier ones allowed.
FIRST_BROKEN_ENTRY = sql.SQL(
    """
    SELECT idx, rule FROM (SELECT idx, CASE {branches} END AS rule FROM {batch}) x
    WHERE rule IS NOT NULL ORDER BY idx LIMIT 1
    """
).format(
    batch=sql.Identifier(BATCH_TABLE),
    branches=sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(sql.SQL(c.condition), sql.Literal(i))
        for i, c in enumerate(CHECKS)
    ),
)


def _stage_query() -> sql.Composed:
    columns: list[sql.Composable] = [sql.SQL("%(lang)s"), sql.SQL("btrim(e ->> %(lang)s)")]
    for name, spec in ENTRY_FIELDS.items():
        if spec.kind == "rank":
            columns.append(sql.SQL("(e ->> {})::int").format(sql.Literal(name)))
        else:
            columns.append(sql.SQL("btrim(e ->> {})").format(sql.Literal(name)))
    columns.append(sql.SQL("nullif(e - %(known)s::text[], '{}'::jsonb)"))
    columns.append(sql.SQL("idx"))
    return sql.SQL("SELECT {} FROM {} WHERE idx >= %(first)s AND idx < %(stop)s").format(
        sql.SQL(", ").join(columns), sql.Identifier(BATCH_TABLE)
    )


STAGE = _stage_query()


@dataclass
class Batch:
    header: DictionaryBatchHeader
    size: int


class DictionaryHandler:
    """A batch is all or nothing: one bad entry fails the job and nothing is written."""

    async def prepare(self, ctx: JobContext) -> None:
        """Nothing to fetch: the batch is in PostgreSQL and is checked inside ``apply``."""

    async def apply(self, ctx: JobContext, prepared: None, conn: AsyncConnection[Any]) -> Outcome:
        batch = await self._read_header(ctx, conn)
        lang = batch.header.lang
        params: dict[str, Any] = {"job_id": ctx.job_id, "lang": lang}
        await conn.execute(UNPACK, params)
        await conn.execute(INDEX_BATCH)
        broken = await (await conn.execute(FIRST_BROKEN_ENTRY, params)).fetchone()
        if broken is not None:
            index, rule = broken
            check = CHECKS[rule]
            field = lang if check.field is None else check.field
            where = f"'{field}' " if field else ""
            raise DomainError(f"entry {index}: {where}{check.message}")
        await ctx.emitter.log(f"Validated {batch.size} entries for language '{lang}'")

        async def on_progress(done: int) -> None:
            await ctx.emitter.emit("progress", {"processed": done, "total": batch.size})

        known = [lang, *ENTRY_FIELDS]
        chunks = [
            {**params, "known": known, "first": first, "stop": first + CHUNK}
            for first in range(0, batch.size, CHUNK)
        ]
        merged = await merge(conn, TARGET, SqlSource(STAGE, chunks), on_progress=on_progress)
        changed = merged.created + merged.updated
        if changed:
            meta = {"source": "internal_sync", "requestId": batch.header.request_id,
                    "sender": batch.header.source}  # fmt: skip
            audit = {**params, "actor": batch.header.actor_username, "meta": Jsonb(meta)}
            await conn.execute(AUDIT_FROM_CHANGES, audit)
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
