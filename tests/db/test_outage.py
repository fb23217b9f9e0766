"""Which database errors mean "unavailable right now" (db/outage.py): those are answered 503
with Retry-After, every other error as the fault it is."""

from __future__ import annotations

import sqlite3

import psycopg
import psycopg.errors
import pytest
from sqlalchemy import exc

from db.outage import is_database_unavailable


def wrapped(error: BaseException) -> exc.DBAPIError:
    """The error as SQLAlchemy raises it from a statement."""
    return exc.OperationalError("SELECT 1", {}, error)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("connection refused"),  # no SQLSTATE: never reached the server
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.CannotConnectNow("the database system is starting up"),
        psycopg.errors.TooManyConnections("sorry, too many clients already"),
        sqlite3.OperationalError("database is locked"),
    ],
    ids=["refused", "57P01", "57P03", "53300", "sqlite-locked"],
)
def test_an_outage_is_recognised_raised_alone_or_through_sqlalchemy(error: Exception) -> None:
    assert is_database_unavailable(error)
    assert is_database_unavailable(wrapped(error))


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.UniqueViolation("duplicate key value violates unique constraint"),
        psycopg.errors.SyntaxError("syntax error at or near"),
        sqlite3.OperationalError("no such table: district"),
        ValueError("not a database error"),
    ],
    ids=["23505", "42601", "sqlite-no-table", "not-database"],
)
def test_a_fault_is_not_taken_for_an_outage(error: Exception) -> None:
    assert not is_database_unavailable(error)
    assert not is_database_unavailable(wrapped(error))


def test_an_outage_raised_from_within_another_error_is_found() -> None:
    try:
        try:
            raise psycopg.errors.AdminShutdown("terminating connection")
        except psycopg.Error as error:
            raise RuntimeError("the job failed") from error
    except RuntimeError as outer:
        assert is_database_unavailable(outer)
