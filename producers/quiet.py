"""Logging a dependency that keeps failing: the first failure, then one line a minute."""

from __future__ import annotations

import logging
import time

REPEAT_S = 60.0


class Quiet:
    """Says once that ``what`` fails and why, repeats at most every ``REPEAT_S`` with a count,
    and says when it works again: an outage is a few lines, not a flood."""

    def __init__(self, log: logging.Logger, what: str, *, then: str = "retrying") -> None:
        self._log = log
        self._what = what
        self._then = then  # what happens after a failure
        self._failing_since: float | None = None
        self._last_said = 0.0
        self._unsaid = 0

    def failed(self, reason: str) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        elif now - self._last_said < REPEAT_S:
            self._unsaid += 1
            return
        more = f" ({self._unsaid} more failures since the last report)" if self._unsaid else ""
        self._log.warning("%s: %s%s; %s", self._what, reason, more, self._then)
        self._last_said = now
        self._unsaid = 0

    def succeeded(self) -> None:
        if self._failing_since is not None:
            down = time.monotonic() - self._failing_since
            self._log.info("%s works again after %.0fs", self._what, down)
            self._failing_since = None
            self._unsaid = 0
