"""Mistakes a user can fix, reported in mutation payloads rather than raised; and what a user may
be told about a failure nobody expected."""

from __future__ import annotations

import logging
import secrets
import traceback
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError, StatementError

from licensing.domain.error_codes import ErrorCode

logger = logging.getLogger("licensing.errors")

INTERNAL_ERROR = ErrorCode.INTERNAL_ERROR
DRIVER_MODULES = ("sqlite3", "psycopg")


@dataclass(frozen=True)
class Problem:
    code: ErrorCode
    message: str
    field: str | None = None


def internal_error_text(error: BaseException) -> str:
    """What an administrator or integrator may read about an unexpected exception: its kind, a
    code and a reference to the server log, never the exception's own text.

    A database error's text holds the SQL and its parameters (other students' names and ids),
    so it is logged here without them: the driver's error class, the SQLSTATE and the statement's
    start. Use this wherever such a failure is stored or shown (``dataSources.lastError``, the
    audit log, ``scheduledJobs.lastError``, command output).
    """
    reference = secrets.token_hex(4)
    if is_database_error(error):
        logger.error(
            "%s %s: a database error: %s\n%s",
            INTERNAL_ERROR,
            reference,
            _database_error_summary(error),
            "".join(traceback.format_tb(error.__traceback__)).rstrip(),
        )
        kind = "a database error"
    else:
        logger.error("%s %s", INTERNAL_ERROR, reference, exc_info=error)
        kind = type(error).__name__
    return f"{kind}; {INTERNAL_ERROR}, reference {reference} in the server log"


def is_database_error(error: BaseException) -> bool:
    """Whether ``error`` comes from the database or its driver (and so may quote rows)."""
    if isinstance(error, SQLAlchemyError):
        return True
    return type(error).__module__.split(".")[0] in DRIVER_MODULES


def is_unique_violation(error: BaseException) -> bool:
    """Whether the database refused a row because its key is already taken (and not for
    another reason, such as a trigger or a check, which SQLite also reports as an IntegrityError)."""
    original = error.orig if isinstance(error, StatementError) else error
    code = getattr(original, "sqlstate", None) or getattr(original, "sqlite_errorname", None)
    return code in ("23505", "SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")


def _database_error_summary(error: BaseException) -> str:
    """The error's class, SQLSTATE and statement (first 120 characters), without the message:
    PostgreSQL's DETAIL and the driver's text may quote a row's values."""
    original = error.orig if isinstance(error, StatementError) else error
    parts = [f"{type(error).__name__}({type(original).__name__})"]
    sqlstate = getattr(original, "sqlstate", None) or getattr(original, "sqlite_errorname", None)
    if sqlstate:
        parts.append(f"SQLSTATE {sqlstate}")
    statement = getattr(error, "statement", None)
    if statement:
        parts.append(f"in {' '.join(str(statement).split())[:120]}")
    return " ".join(parts)
