"""The job a log line is about: a context variable the pipeline sets, a filter that reads it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace

# The record attributes the filter sets, in the order the formatters show them.
FIELDS = ("job_id", "request_id", "domain")


@dataclass(frozen=True)
class JobLogContext:
    """What identifies a job in its log lines; a field is None until it is known."""

    request_id: str | None = None
    domain: str | None = None
    job_id: str | None = None


_current: ContextVar[JobLogContext | None] = ContextVar("syncbus_job_log_context", default=None)


@contextlib.contextmanager
def job_logging(*, request_id: str, domain: str) -> Iterator[None]:
    """Every line logged in this context (tasks and threads started from it too) names the
    request and its domain; ``set_job_id`` adds the job once it has one."""
    token = _current.set(JobLogContext(request_id=request_id, domain=domain))
    try:
        yield
    finally:
        _current.reset(token)


def set_job_id(job_id: object) -> None:
    """The current request's job is known now (within ``job_logging``)."""
    current = _current.get()
    if current is not None:
        _current.set(replace(current, job_id=str(job_id)))


def current() -> JobLogContext | None:
    return _current.get()


class JobContextFilter(logging.Filter):
    """Puts the current job's ids on each record (None outside a job); never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _current.get()
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, getattr(context, name) if context is not None else None)
        return True
