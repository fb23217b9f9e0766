"""Which failures mean "the database cannot answer right now" rather than "this request is wrong".

PostgreSQL restarting (or unreachable) and SQLite busy beyond its busy timeout are not faults of
the request or of the code: the same request succeeds a moment later. Every entry point answers
them in one way (HTTP 503 with ``Retry-After``, graph/outage.py) instead of as an internal error,
and the engine (db/session.py) replaces the connections the outage broke.
"""

from __future__ import annotations

import sqlite3
import sys

from sqlalchemy import exc

# Seconds a caller is asked to wait before trying again: a PostgreSQL restart takes about this
# long, and SQLite's writer has long finished by then.
RETRY_AFTER_SECONDS = 5
# SQLSTATEs of a server that is going away or not yet there: connection exceptions (class 08),
# administrator or crash shutdown, "the database system is starting up", too many connections.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08",)
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
# SQLite's words for "another process holds the lock" and "the file cannot be opened".
_SQLITE_UNAVAILABLE = ("database is locked", "database is busy", "unable to open database file")
# How far along __cause__ / __context__ to look for the database's own error.
_MAX_CHAIN = 16


def is_database_unavailable(error: BaseException | None) -> bool:
    """Whether ``error`` (or an error it was raised from) says the database is unavailable."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen and len(seen) < _MAX_CHAIN:
        seen.add(id(error))
        if _says_unavailable(error):
            return True
        original = getattr(error, "orig", None) if isinstance(error, exc.DBAPIError) else None
        if isinstance(original, BaseException) and _says_unavailable(original):
            return True
        error = error.__cause__ or error.__context__
    return False


def _psycopg_connection_errors() -> tuple[type[BaseException], ...]:
    """psycopg's errors of a connection, if this process uses psycopg. Importing it here would
    cost every process on SQLite (each command, each worker) about 90 ms of start-up, and a
    process that has not imported it has no psycopg error to classify: SQLAlchemy imports it
    when it opens a PostgreSQL engine."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return ()
    return (psycopg.OperationalError, psycopg.InterfaceError)


def _says_unavailable(error: BaseException) -> bool:
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True  # SQLAlchemy recognised a disconnect and has replaced the pool's connections
    if isinstance(error, exc.TimeoutError | exc.DisconnectionError):
        return True  # no pooled connection came free in time, or a checked-out one was dead
    if isinstance(error, _psycopg_connection_errors()):
        sqlstate = getattr(error, "sqlstate", None)
        if sqlstate is None:
            return True  # refused, reset or closed before the server said anything
        return sqlstate in _UNAVAILABLE_SQLSTATES or sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES
    if isinstance(error, sqlite3.OperationalError):
        message = str(error).lower()
        return message.startswith(_SQLITE_UNAVAILABLE)
    return False
