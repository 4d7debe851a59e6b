"""What a domain handler is: prepare (fetch, no writes), then stage and apply in one transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from psycopg import AsyncConnection

from schemas.events import ChangeEvent, SyncRequest
from schemas.jobs import JobCounts
from streams.progress import ProgressEmitter


class DomainError(Exception):
    """A failure the job reports as its ``error_message`` (bad input, source refused...);
    ``result`` is what the failed job still shows (say, each source's report)."""

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.details = details
        self.result = result


@dataclass
class JobContext:
    """What a handler knows about the job it runs. A pushed payload is in ``sync_payloads``
    (jsonb, keyed by ``job_id``), for handlers to read set-based in SQL."""

    job_id: uuid.UUID
    request: SyncRequest
    emitter: ProgressEmitter


@dataclass
class Outcome:
    """A handler's result: counts for the job row, extra facts for ``result``; ``summary``
    lines go out before the stream's ``=== Sync Complete ===``, ``epilogue`` lines after it."""

    counts: JobCounts
    result: dict[str, Any] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)
    epilogue: list[str] = field(default_factory=list)
    changes: list[ChangeEvent] = field(default_factory=list)
    # A run that went through but left part undone (a release of several, a collection):
    # the job succeeds, and its ``complete`` event says ``success: false`` with this.
    problem: str | None = None


class DomainHandler(Protocol):
    """One sync domain. The worker runs ``stage`` of one request while the previous request
    of the same domain is still being applied; ``apply`` of a request starts once the
    previous request's transaction has committed. A handler whose seed words the stream's
    first line itself sets ``announces_start = True`` (the pipeline's own line is left out).
    One whose ``prepare`` may read what an earlier request writes has an async
    ``waits_for_previous(ctx) -> bool``: when true, the request is prepared only after the
    previous one committed."""

    async def prepare(self, ctx: JobContext) -> Any:
        """Fetch and validate; raise DomainError for bad input. Must not write."""

    async def stage(self, ctx: JobContext, prepared: Any, conn: AsyncConnection[Any]) -> Any:
        """Inside the job's transaction: load and check the rows into temporary tables;
        raise DomainError for bad input. Must not write shared tables (it runs before the
        previous request's writes are committed)."""

    async def apply(self, ctx: JobContext, staged: Any, conn: AsyncConnection[Any]) -> Outcome:
        """Write the changes in the same transaction, which also finishes the job."""
