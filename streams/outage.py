"""Waiting out a database outage: which failures are one, and saying so once, not per retry."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import RetryCallState

from db.errors import describe, is_transient
from producers.quiet import Quiet

T = TypeVar("T")

log = logging.getLogger(__name__)

# The longest pause between two attempts while PostgreSQL is away.
OUTAGE_MAX_WAIT_S = 5.0


class Interrupted(Exception):
    """An outage stopped claimed attempts: they go back to the queue before the retry."""

    def __init__(self, attempts: list[tuple[uuid.UUID, int]]) -> None:
        super().__init__(f"{len(attempts)} claimed attempts were interrupted")
        self.attempts = attempts


def is_transient_or_interrupted(error: BaseException) -> bool:
    return isinstance(error, Interrupted) or is_transient(error)


class Outage:
    """Logs the first failure of an outage with its reason, then nothing until it ends."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._since: float | None = None
        self._retries = 0

    def note(self, state: RetryCallState) -> None:
        """tenacity's ``before_sleep``: one warning when the outage starts."""
        self._retries += 1
        if self._since is not None:
            return
        self._since = time.monotonic()
        error = state.outcome.exception() if state.outcome is not None else None
        cause = error.__cause__ if isinstance(error, Interrupted) else error
        log.warning(
            "%s waits for PostgreSQL (%s); retrying with backoff, nothing is acked meanwhile",
            self._what,
            describe(cause) if cause is not None else "unavailable",
        )

    def ended(self) -> None:
        if self._since is not None:
            log.info(
                "%s resumed after %.1fs and %d retries",
                self._what,
                time.monotonic() - self._since,
                self._retries,
            )
            self._since = None
            self._retries = 0


async def guarded(what: str, quiet: Quiet, work: Callable[[], Awaitable[T]]) -> T | None:
    """One pass of periodic work (a timer, a leader duty): a bug is logged with its
    traceback, an outage once (``quiet``); neither ends the loop that runs it."""
    try:
        result = await work()
    except Exception as exc:
        if not is_transient(exc):
            log.exception("%s failed", what)
        quiet.failed(describe(exc))
        return None
    quiet.succeeded()
    return result
