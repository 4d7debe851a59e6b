"""Which database errors are worth waiting out (the server is away) and which are final."""

from __future__ import annotations

import psycopg
from sqlalchemy import exc as sa_exc

# SQLSTATE classes and codes that say "not now" rather than "never": connection exceptions
# (08), the server shutting down or starting (57P01-57P03), too many connections (53300),
# out of resources (53xxx), serialisation failures and deadlocks (40001, 40P01),
# a statement cancelled by a timeout or an operator (57014), and a write refused by a
# read-only server (25006, see RECONNECT_CODES).
TRANSIENT_CLASSES = ("08", "53")
TRANSIENT_CODES = frozenset({"57P01", "57P02", "57P03", "40001", "40P01", "57014", "25006"})
# Of those, the ones the same work can meet every time: a statement_timeout set on the role
# (57014) and out of memory (53200). Retried a few times, then the job's own failure.
REPEATABLE_CODES = {"57014": "a statement timeout", "53200": "out of memory"}
# A write on a server in recovery, or one whose sessions default to read-only: what a
# connection to the old primary meets after a failover. The same connection would meet it
# for ever, so the engine (db.engine) drops its connections on it and the retry reconnects.
RECONNECT_CODES = frozenset({"25006"})


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error, also when SQLAlchemy wraps it."""
    original = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    code = getattr(original, "sqlstate", None)
    return code if isinstance(code, str) else None


def is_transient(error: BaseException) -> bool:
    """True when ``error`` means PostgreSQL is unreachable, restarting or overloaded:
    retrying the same work later can succeed, so the work must not be given up on."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa_exc.TimeoutError | sa_exc.InterfaceError):
        return True  # the pool found no connection in time; a closed connection
    code = sqlstate(error)
    if code is not None:
        return code.startswith(TRANSIENT_CLASSES) or code in TRANSIENT_CODES
    original = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    # No SQLSTATE: the connection itself failed (refused, reset, closed mid-statement).
    return isinstance(original, psycopg.OperationalError | psycopg.InterfaceError)


def describe(error: BaseException) -> str:
    """One line about a database error for the log: its class, SQLSTATE and first line
    (psycopg's messages name host and port, never the password)."""
    original = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    first = str(original).strip().splitlines()[0] if str(original).strip() else ""
    code = sqlstate(error)
    name = type(original).__name__ if original is not None else type(error).__name__
    return f"{name}{f' {code}' if code else ''}: {first}"[:300]
