"""Disposing of a database closes every connection, including one still in use at that moment
(a read finishing in a worker thread while the service shuts down): it is closed when it is
returned, not left open for the garbage collector to find."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
from sqlalchemy import text

from db.session import Database


def answers(driver_connection: Any) -> bool:
    try:
        driver_connection.cursor().execute("SELECT 1")
    except (sqlite3.ProgrammingError, psycopg.OperationalError):
        return False
    return True


def test_a_connection_in_use_when_the_database_is_disposed_is_closed_once_returned(
    new_database_url,
):
    database = Database(new_database_url())
    with database.engine.connect() as connection:
        driver_connection = connection.connection.dbapi_connection
        database.dispose()
        assert connection.execute(text("SELECT 1")).scalar() == 1  # its work goes on
    assert not answers(driver_connection)

    # The database itself stays usable, on new connections that stay pooled.
    with database.read() as session:
        assert session.execute(text("SELECT 2")).scalar() == 2
    with database.engine.connect() as connection:
        pooled = connection.connection.dbapi_connection
    assert answers(pooled)
    database.dispose()
    assert not answers(pooled)
