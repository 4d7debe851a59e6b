"""Faust's and mode's crash reports go through logging, a broker error's in one line.

When the broker goes away while Faust starts, mode printed the consumer thread's crash
straight to stderr with a traceback (plain text amid JSON logs), logged it twice more with
tracebacks, and the thread's end printed a fourth. The worker waits such a broker out and
says so itself ("broker: not reachable"); the tracebacks added nothing.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)
from mode.threads import ServiceThread

log = logging.getLogger("mode.threads")
THIRD_PARTY = ("faust", "mode")
# The broker is away or not ready: waited out. Other Kafka errors (a failed commit, a record
# too large, an illegal state) may be bugs and keep their traceback.
BROKER_AWAY = (
    KafkaConnectionError,
    NodeNotReadyError,
    KafkaTimeoutError,
    RequestTimedOutError,
    GroupCoordinatorNotAvailableError,
)


class BrokerErrorsWithoutTraceback(logging.Filter):
    """Keeps a Faust or mode record about a broker that is away, without its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, BROKER_AWAY) and record.name.split(".")[0] in THIRD_PARTY:
            record.exc_info = None
            record.exc_text = None
        return True


BROKER_ERRORS = BrokerErrorsWithoutTraceback()


def _on_crash(self: Any, msg: str, *fmt: Any, **_: Any) -> None:
    """mode's ``ServiceThread.on_crash`` printed to stderr; it runs inside the except."""
    log.error(msg.format(*fmt), exc_info=True)


def _thread_ended(args: threading.ExceptHookArgs) -> None:
    """A thread that ends on an exception says so through logging, not on stderr."""
    if issubclass(args.exc_type, SystemExit):
        return  # as the default hook: a thread may end itself so
    name = args.thread.name if args.thread is not None else "?"
    if isinstance(args.exc_value, BROKER_AWAY):
        log.warning("thread %s stopped: %r", name, args.exc_value)
        return
    logging.getLogger("syncbus").error(
        "thread %s stopped on an error", name, exc_info=args.exc_value
    )


def crash_reports_through_logging() -> None:
    """Install the above for this process (after its logging is configured)."""
    setattr(ServiceThread, "on_crash", _on_crash)  # noqa: B010
    threading.excepthook = _thread_ended
    for handler in logging.getLogger().handlers:
        handler.addFilter(BROKER_ERRORS)
