"""Request bodies in sync_payloads: stored as jsonb, compared on replay, dropped after retention."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

# The text goes to PostgreSQL as is (no re-encoding of a multi-megabyte body in Python).
INSERT_PAYLOAD = text(
    "INSERT INTO sync_payloads (job_id, body) VALUES (:job_id, CAST(:body AS jsonb))"
)


SAME_PAYLOAD = text("SELECT body = CAST(:body AS jsonb) FROM sync_payloads WHERE job_id = :job_id")
SAME_STORED_PAYLOAD = text(
    "SELECT a.body = b.body FROM sync_payloads a, sync_payloads b "
    "WHERE a.job_id = :job_id AND b.job_id = :other"
)
# Parse once, store, and describe what was stored: the object without its entries (the
# batch header, NULL for a body that is no object), the entries' type and count (generated
# columns, migration 0006), and the first non-object entry. Only a batch with a non-object
# entry pays for the scan that finds its index: the jsonpath test walks the entries
# without copying each one out, as that scan does (a third of the statement's cost).
STORE_BATCH = text(
    """
    INSERT INTO sync_payloads (job_id, body) VALUES (:job_id, CAST(:body AS jsonb))
    RETURNING header, entries_type, entries_count,
           CASE WHEN jsonb_path_exists(
               body, 'strict $.entries[*] ? (@.type() != "object")', '{}', silent => true
           ) THEN (
               SELECT min(item.ord) - 1
               FROM jsonb_array_elements(body -> 'entries') WITH ORDINALITY item(e, ord)
               WHERE jsonb_typeof(item.e) <> 'object'
           ) END
    """
)

# What PostgreSQL's JSON parser refuses in a body: it is the sender's error, never ours.
JSON_LIMITS = {
    "22003": "a number is out of the range PostgreSQL can store",  # numeric overflow
    "54001": "JSON nested too deeply",  # statement_too_complex: stack depth limit
    "54000": "JSON too large for PostgreSQL",  # program_limit_exceeded
}
# invalid_text_representation, untranslatable_character, character_not_in_repertoire
JSON_INPUT_ERRORS = {"22P02", "22P05", "22021", *JSON_LIMITS}


class NotJson(Exception):
    """A body PostgreSQL could not parse as JSON; the message says why."""


@dataclass(frozen=True)
class StoredBatch:
    """What :func:`store_batch` stored: ``header`` is the body without its entries, None
    when the body is not a JSON object."""

    header: dict[str, Any] | None
    entries_kind: str | None
    entries: int
    first_not_object: int | None


async def store_batch(conn: AsyncConnection, job_id: uuid.UUID, body: str) -> StoredBatch:
    """Store a pushed batch for ``job_id`` (whose row may follow in this transaction),
    parsed by PostgreSQL only; raise NotJson when it is not JSON."""
    if "\x00" in body:  # psycopg refuses to send it; unescaped, JSON never has one
        raise NotJson("the body contains a NUL character")
    try:
        row = (await conn.execute(STORE_BATCH, {"job_id": job_id, "body": body})).one()
    except RecursionError:  # Python decoding a header PostgreSQL could nest deeper
        raise NotJson("JSON nested too deeply") from None
    except ValueError as exc:  # a header number past Python's int digit limit
        raise NotJson(f"a number is too long ({exc})") from None
    except DBAPIError as exc:
        if exc.orig is None or getattr(exc.orig, "sqlstate", "") not in JSON_INPUT_ERRORS:
            raise
        code = getattr(exc.orig, "sqlstate", "")
        diag = getattr(exc.orig, "diag", None)
        reason = JSON_LIMITS.get(code) or getattr(diag, "message_primary", None) or "invalid JSON"
        detail = getattr(diag, "message_detail", None)
        raise NotJson(f"{reason} ({detail})" if detail else reason) from None
    header, entries_kind, entries, first_not_object = row
    return StoredBatch(header, entries_kind, int(entries), first_not_object)


async def same_payload(
    conn: AsyncConnection, job: RowMapping, payload_sha256: str | None, body: str | None
) -> bool:
    """Whether a request for an existing ``job`` carries the payload the job was created
    with. Equal hashes answer at once; otherwise the stored payload is compared as jsonb
    (key order and whitespace do not count). A payload already dropped by retention
    matches only by hash."""
    if job["payload_sha256"] == payload_sha256:
        return True
    if body is None:
        return False
    row = (await conn.execute(SAME_PAYLOAD, {"job_id": job["id"], "body": body})).first()
    return bool(row and row[0])


async def same_stored_payload(conn: AsyncConnection, job: RowMapping, other: uuid.UUID) -> bool:
    """Whether the payload just stored for job ``other`` is ``job``'s (see same_payload)."""
    row = (await conn.execute(SAME_STORED_PAYLOAD, {"job_id": job["id"], "other": other})).first()
    return bool(row and row[0])


async def drop_old_payloads(conn: AsyncConnection, retention_s: float) -> int:
    """Forget request bodies of jobs that ended long ago (their fingerprint stays on the job)."""
    stmt = text(
        "DELETE FROM sync_payloads p USING sync_jobs j WHERE j.id = p.job_id "
        "AND j.finished_at < now() - make_interval(secs => :s)"
    )
    return (await conn.execute(stmt, {"s": retention_s})).rowcount
