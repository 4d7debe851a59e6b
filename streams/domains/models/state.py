"""What the last successful models sync saw and left: when both are still so, nothing can change.

A models sync is a pure function of its input (each source's documents, or its failure) and of
the catalogue it merges into, and it is idempotent: merging the same input twice changes nothing
the second time. So when this sync's input fingerprint equals that of the last successful sync,
and the catalogue still has the signature that sync left it with (nothing wrote a row since),
the full diff is known to find nothing; the handler then skips unify, COPY and the diff.

Both values are kept in that job's ``result`` (``catalogue_state``), written in the same
transaction as its merge, so a sync that rolled back leaves nothing to compare against.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import orjson
from psycopg import AsyncConnection

from schemas.models import SourceName, SourceState

RESULT_KEY = "catalogue_state"
# Everything that turns a source's documents into catalogue rows: a change to any of them (or
# to the libraries that parse and serialise) makes every earlier fingerprint stale.
_ROW_CODE = (
    "schemas.models",
    "streams.domains.models.sources",
    "streams.domains.models.readers",
    "streams.domains.models.modelsdev_openrouter",
    "streams.domains.models.huggingface_artificialanalysis",
    "streams.domains.models.unify",
    "streams.domains.models.handler",
    "streams.domains.models.state",
)
_ROW_LIBRARIES = ("orjson", "pydantic", "pydantic-core", "psycopg")

# Any write to a row gives it a new xmin; a deleted or added row changes the set of ids. The
# sum of per-row hashes does not depend on scan order and costs one pass over 20,000 narrow
# tuples (a few ms), where hashing every column's text costs 20 times as much. updated_at in
# the hash guards against an xid reused after wraparound on the same id.
TABLE_SIGNATURE = """
SELECT count(*)::text || ':' || coalesce(sum(hashtextextended(
    concat_ws(' ', id, xmin, extract(epoch FROM updated_at)), 0)), 0)::text
FROM model_catalog
"""
# Models syncs are exclusive (one active at a time), so the newest succeeded is the last to
# finish; created_at walks the (domain, created_at) index instead of sorting every models job.
LAST_SUCCESS = """
SELECT id::text, discovered, result -> 'catalogue_state', result -> 'sources' FROM sync_jobs
WHERE domain = 'models' AND status = 'succeeded'
ORDER BY created_at DESC LIMIT 1
"""


def _code_salt() -> bytes:
    digest = hashlib.sha256()
    for module in _ROW_CODE:
        spec = find_spec(module)
        assert spec is not None and spec.origin is not None, module
        digest.update(module.encode())
        digest.update(Path(spec.origin).read_bytes())
    for name in _ROW_LIBRARIES:
        digest.update(f"{name}=={version(name)}".encode())
    return digest.digest()


CODE_SALT = _code_salt()


class DocumentDigest:
    """A running hash of the documents one source answered with, page by page."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def add(self, document: Any) -> None:
        # orjson writes a parsed document back the same way every time (key order kept), so
        # equal documents give equal bytes whatever whitespace the source sent.
        page = orjson.dumps(document)
        self._hash.update(len(page).to_bytes(8, "big"))
        self._hash.update(page)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


@dataclass(frozen=True)
class SourcePart:
    """One source's share of the input: how its fetch ended, its pages, what the fetch noted."""

    source: SourceName
    state: SourceState
    digest: DocumentDigest
    notes: Sequence[str]


def input_fingerprint(parts: Sequence[SourcePart]) -> str:
    """One hash of what the sync will merge: each source's documents when it answered in full,
    otherwise only how it ended (a failed source's models are kept, whatever it sent). Equal
    fingerprints mean equal records and equal reports, bar the timings."""
    digest = hashlib.sha256(CODE_SALT)
    for part in parts:
        pages = part.digest.hexdigest() if part.state == "ok" else ""
        notes = orjson.dumps(list(part.notes)).decode() if part.state == "ok" else ""
        digest.update(f"{part.source}\0{part.state}\0{pages}\0{notes}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class CatalogueState:
    """An input fingerprint and the catalogue's signature right after it was merged."""

    input: str
    table: str

    def as_result(self) -> dict[str, str]:
        return {"input": self.input, "table": self.table}


@dataclass(frozen=True)
class LastSync:
    """The last successful models sync: its job id, model count, what it left, and each
    source's report as stored in its result."""

    job_id: str
    models: int
    state: CatalogueState | None
    reports: list[dict[str, Any]]

    def read(self, fingerprint: str) -> bool:
        """Whether that sync read this very input (so its reports hold for it too)."""
        return self.state is not None and self.state.input == fingerprint


async def table_signature(conn: AsyncConnection[Any]) -> str:
    cur = await conn.execute(TABLE_SIGNATURE)
    row = await cur.fetchone()
    assert row is not None
    return str(row[0])


async def last_sync(conn: AsyncConnection[Any]) -> LastSync | None:
    cur = await conn.execute(LAST_SUCCESS)
    row = await cur.fetchone()
    if row is None:
        return None
    job_id, models, saved, reports = row
    state = None
    if isinstance(saved, dict) and {"input", "table"} <= saved.keys():
        state = CatalogueState(input=str(saved["input"]), table=str(saved["table"]))
    reports = [r for r in reports if isinstance(r, dict)] if isinstance(reports, list) else []
    return LastSync(job_id=job_id, models=int(models), state=state, reports=reports)


async def unchanged_since(conn: AsyncConnection[Any], fingerprint: str) -> LastSync | None:
    """The last successful sync when it merged this very input and no row was written since
    (so the full diff would find nothing), else None."""
    last = await last_sync(conn)
    if last is None or last.state is None or not last.read(fingerprint):
        return None
    if await table_signature(conn) != last.state.table:
        return None
    return last
