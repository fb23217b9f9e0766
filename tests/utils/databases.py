"""The database each test runs against: a SQLite file, or a fresh PostgreSQL database.

``LICENSING_TEST_DATABASE_URL`` (a PostgreSQL server URL whose role may create databases, e.g.
``postgresql+psycopg://licensing_test:secret@127.0.0.1:54329/postgres``) runs the suite on
PostgreSQL: every database a test asks for is created empty on that server and dropped after the
test. ``LICENSING_REQUIRE_POSTGRES=1`` (CI) turns every "no PostgreSQL server" skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from db.session import Database

SERVER_VARIABLE = "LICENSING_TEST_DATABASE_URL"
REQUIRE_VARIABLE = "LICENSING_REQUIRE_POSTGRES"

# Read once, at import: the autouse fixture clears every LICENSING_* variable for the tests.
SERVER_URL = os.environ.get(SERVER_VARIABLE, "").strip()
REQUIRE_POSTGRES = os.environ.get(REQUIRE_VARIABLE, "").strip() not in ("", "0", "false")


def on_postgres() -> bool:
    """Whether this run's tests use PostgreSQL."""
    return bool(SERVER_URL)


def skip_unless_postgres() -> None:
    """Skip a PostgreSQL-only test when no server was given; fail instead when CI requires one."""
    if on_postgres():
        return
    message = f"needs a PostgreSQL server: set {SERVER_VARIABLE}"
    if REQUIRE_POSTGRES:
        pytest.fail(f"{REQUIRE_VARIABLE} is set but {SERVER_VARIABLE} is not; {message}")
    pytest.skip(message)


class PostgresServer:
    """Creates and drops the per-test databases on the test server."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        if self.url.get_backend_name() != "postgresql":
            raise pytest.UsageError(f"{SERVER_VARIABLE} must be a postgresql URL, not {url!r}")
        self.admin: Engine = create_engine(
            self.url, isolation_level="AUTOCOMMIT", poolclass=NullPool
        )

    def create(self) -> str:
        name = f"licensing_test_{uuid.uuid4().hex[:16]}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self.admin.connect() as connection:
            # FORCE: a test that did not dispose of its engine must not keep its database alive.
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def dispose(self) -> None:
        self.admin.dispose()


class TestDatabases:
    """``new(name)``: the URL of a new, empty database for one test."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, folder: Path, server: PostgresServer | None) -> None:
        self.folder = folder
        self.server = server
        self.created: list[str] = []

    def new(self, name: str = "licensing") -> str:
        if self.server is None:
            return f"sqlite:///{self.folder / f'{name}.db'}"
        url = self.server.create()
        self.created.append(url)
        return url

    def drop_all(self) -> None:
        if self.server is not None:
            for url in self.created:
                self.server.drop(url)


def refuse_inserts(database: Database, table: str) -> None:
    """Make the database itself refuse every new row of ``table``, as a full disk would."""
    with database.write() as session:
        if database.is_sqlite:
            session.execute(
                text(
                    f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'could not extend file'); END"
                )
            )
            return
        session.execute(
            text(
                f"CREATE FUNCTION refuse_{table}() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'could not extend file'; END $$ LANGUAGE plpgsql"
            )
        )
        session.execute(
            text(
                f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION refuse_{table}()"
            )
        )
