"""The dictionary domain (seed 004): upsert pushed entries, bump the version, write audit rows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from psycopg import AsyncConnection, sql
from pydantic import ValidationError

from db.merge import CHANGES_TABLE, MergeTarget, merge
from schemas.dictionary import DictionaryEntry, DictionaryPush, EntryError, parse_entry
from schemas.jobs import JobCounts
from streams.domains.base import DomainError, JobContext, Outcome

CONTENT = (
    "ru", "level", "register", "accent", "frequency_rank", "rarity",
    "ipa_uk", "ipa_us", "example", "example_ru", "extra",
)  # fmt: skip
TARGET = MergeTarget("dictionary_entries", keys=("lang", "word"), columns=CONTENT)

AUDIT_FROM_CHANGES = sql.SQL(
    """
INSERT INTO dictionary_audit_log (lang, word, action, actor_username, job_id, meta)
SELECT c.lang, c.word, c.op, %(actor)s, %(job_id)s,
       jsonb_build_object('source', 'internal_sync', 'requestId', %(request_id)s::text,
                          'sender', %(sender)s::text)
FROM {changes} c
"""
).format(changes=sql.Identifier(CHANGES_TABLE))
BUMP_VERSION = """
INSERT INTO dictionary_versions AS v (lang, version) VALUES (%(lang)s, 1)
ON CONFLICT (lang) DO UPDATE SET version = v.version + 1, updated_at = now()
RETURNING version
"""
CURRENT_VERSION = "SELECT version FROM dictionary_versions WHERE lang = %(lang)s"


@dataclass
class PreparedBatch:
    push: DictionaryPush
    entries: list[DictionaryEntry]


def _row(lang: str, entry: DictionaryEntry) -> tuple[object, ...]:
    extra = orjson.dumps(entry.extra).decode() if entry.extra else None
    return (
        lang, entry.word, entry.ru, entry.level, entry.register_, entry.accent,
        entry.frequency_rank, entry.rarity, entry.ipa_uk, entry.ipa_us,
        entry.example, entry.example_ru, extra,
    )  # fmt: skip


class DictionaryHandler:
    """A batch is all or nothing: one bad entry fails the job and nothing is written."""

    async def prepare(self, ctx: JobContext) -> PreparedBatch:
        if ctx.payload is None:
            raise DomainError("the request carries no payload")
        try:
            raw = orjson.loads(ctx.payload)
        except orjson.JSONDecodeError as exc:
            raise DomainError(f"payload is not valid JSON: {exc}") from None
        if isinstance(raw, dict):
            raw.setdefault("requestId", ctx.request.request_id)
        try:
            push = DictionaryPush.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "payload"
            raise DomainError(f"invalid payload: '{where}' {first['msg'].lower()}") from None
        try:
            entries = [parse_entry(push.lang, i, e) for i, e in enumerate(push.entries)]
        except EntryError as exc:
            raise DomainError(str(exc)) from None
        await ctx.emitter.log(f"Validated {len(entries)} entries for language '{push.lang}'")
        return PreparedBatch(push=push, entries=entries)

    async def apply(
        self, ctx: JobContext, prepared: PreparedBatch, conn: AsyncConnection[Any]
    ) -> Outcome:
        push = prepared.push
        lang = push.lang
        total = len(prepared.entries)

        async def on_progress(done: int) -> None:
            await ctx.emitter.emit("progress", {"processed": done, "total": total})

        rows: Iterator[tuple[object, ...]] = (_row(lang, e) for e in prepared.entries)
        merged = await merge(conn, TARGET, rows, on_progress=on_progress)
        params = {
            "lang": lang,
            "actor": push.actor_username,
            "job_id": ctx.job_id,
            "request_id": push.request_id,
            "sender": push.source,
        }
        changed = merged.created + merged.updated
        if changed:
            await conn.execute(AUDIT_FROM_CHANGES, params)
            cur = await conn.execute(BUMP_VERSION, params)
        else:
            cur = await conn.execute(CURRENT_VERSION, params)
        version_row = await cur.fetchone()
        version = int(version_row[0]) if version_row else 0
        return Outcome(
            counts=JobCounts(
                discovered=total,
                created=merged.created,
                updated=merged.updated,
                unchanged=merged.unchanged,
            ),
            result={"lang": lang, "version": version, "entries": total},
            summary=[
                f"Applying updates: {merged.created} new, {merged.updated} updated, "
                f"{merged.unchanged} unchanged",
                f"Dictionary '{lang}' is at version {version}",
            ],
        )
