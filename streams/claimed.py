"""A job a worker claimed, what became of it, and the ordering futures between requests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from schemas.events import AuditEvent, SyncRequest
from schemas.log_context import job_logging, set_job_id
from streams.domains.base import JobContext, Outcome
from streams.progress import ProgressEmitter


@dataclass
class ClaimedJob:
    """A job this worker claimed: its row, the request it runs, and the message that
    carried it (None for a job claimed along with another request's message)."""

    row: Mapping[str, Any]
    request: SyncRequest
    first_seq: int
    message: bytes | None = None
    ctx: JobContext | None = None
    prepared: Any = None
    staged: Any = None
    outcome: Outcome | None = None
    audit: AuditEvent | None = None
    failure: Failure | None = None
    superseded: bool = False
    # The request met the same "transient" error (db.errors.REPEATABLE_CODES) so often
    # that this run takes it as the job's failure instead of waiting it out again.
    last_try: bool = False

    @property
    def id(self) -> uuid.UUID:
        job_id: uuid.UUID = self.row["id"]
        return job_id

    @property
    def attempt(self) -> int:
        return int(self.row["attempt"])

    @property
    def emitter(self) -> ProgressEmitter:
        assert self.ctx is not None
        return self.ctx.emitter

    def context(self) -> JobContext:
        assert self.ctx is not None
        return self.ctx


@dataclass(frozen=True)
class Failure:
    """Why a job failed: the message, details for operators, and what the handler could
    still report (``result``, e.g. each source's outcome)."""

    message: str
    details: dict[str, Any] | None = None
    result: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # PostgreSQL text holds no NUL: the job row, its events and the dead letter say
        # the same.
        object.__setattr__(self, "message", self.message.replace("\x00", "\ufffd"))

    @classmethod
    def internal(cls, exc: BaseException, job_id: uuid.UUID) -> Failure:
        """A bug's failure: its type, and where the traceback is."""
        return cls(f"internal error ({type(exc).__name__}); see worker log for job {job_id}")


@contextmanager
def logging_for(job: ClaimedJob) -> Iterator[None]:
    """Log lines about ``job`` name it, whichever request's message claimed it."""
    with job_logging(request_id=job.request.request_id, domain=job.request.domain):
        set_job_id(job.id)
        yield


def live(group: Sequence[ClaimedJob]) -> list[ClaimedJob]:
    return [job for job in group if job.failure is None and not job.superseded]


def outcome_of(job: ClaimedJob) -> str:
    if job.superseded:
        return "superseded"
    return "failed" if job.failure is not None else "succeeded"


def resolve_after(future: asyncio.Future[None] | None, after: asyncio.Future[None] | None) -> None:
    """Resolve ``future`` now, or once ``after`` is: a request that ends early (skipped,
    dead-lettered) must not let the next one apply before the one before it committed."""
    if future is None or future.done():
        return
    if after is None or after.done():
        future.set_result(None)
    else:
        after.add_done_callback(lambda _: resolve_after(future, None))
