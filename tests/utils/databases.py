"""The database each test runs against: a SQLite file, or a fresh PostgreSQL database.

``LICENSING_TEST_DATABASE_URL`` (a PostgreSQL server URL whose role may create databases, e.g.
``postgresql+psycopg://licensing_test:secret@127.0.0.1:54329/postgres``) runs the suite on
PostgreSQL: every database a test asks for is created on that server and dropped after the
test. ``LICENSING_REQUIRE_POSTGRES=1`` (CI) turns every "no PostgreSQL server" skip into a failure.

A test asks for an empty database or for a migrated one. Running the migrations takes far longer
than copying their result, so each test session migrates one template database, from the
migrations in the tree, when the first test asks for a migrated database; every migrated database
is a copy of it: a file copy on SQLite, a ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from db.migrate import upgrade
from db.private_files import create_private_file
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

    def create(self, *, template: str | None = None, name: str | None = None) -> str:
        """A new database, empty or a copy of ``template`` (the URL of a database nobody is
        connected to); returns its URL. ``name``: one no database on the server has now."""
        name = name or f"licensing_test_{uuid.uuid4().hex[:16]}"
        copy = f' TEMPLATE "{make_url(template).database}"' if template else ""
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self.admin.connect() as connection:
            # FORCE: a test that did not dispose of its engine must not keep its database alive.
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def dispose(self) -> None:
        self.admin.dispose()


class MigratedTemplate:
    """A database migrated to the newest revision, made on first use and kept for the session.

    Nothing stays connected to it, so it can be copied: PostgreSQL refuses a template that has
    sessions, and a SQLite file is complete on its own only once no write-ahead log is left.
    """

    def __init__(self, folder: Path, server: PostgresServer | None) -> None:
        self.folder = folder
        self.server = server
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = self._migrate()
        return self._url

    def _migrate(self) -> str:
        if self.server is None:
            url = f"sqlite:///{self.folder / 'template.db'}"
        else:
            url = self.server.create()
        database = Database(url)
        try:
            upgrade(database)
        finally:
            # SQLite: closing the last connection writes the log into the file and removes it, so
            # the one file is the whole database. It stays in WAL mode, as every database the app
            # opens is: a copy opens without a change of journal, which would write and flush a
            # rollback journal and the folder for each test.
            database.dispose()
        return url

    def copy_to_file(self, path: Path) -> None:
        """Copy the SQLite template to ``path``, a new file readable by its owner only."""
        if path.exists():
            raise FileExistsError(f"{path} exists: ask for a migrated database by a new name")
        template = Path(make_url(self.url).database or "")
        if Path(f"{template}-wal").exists():
            raise RuntimeError(f"{template} still has a write-ahead log: something holds it open")
        create_private_file(path)  # copyfile keeps the mode of the file it writes into
        shutil.copyfile(template, path)

    def drop(self) -> None:
        if self.server is not None and self._url is not None:
            self.server.drop(self._url)


# Unique to this test process (each xdist worker is one), so test runs sharing a server never
# collide on a database name.
_PROCESS_TAG = uuid.uuid4().hex[:12]


class TestDatabases:
    """``new(name, migrated=False)``: the URL of a new database for one test, empty or migrated
    to the newest revision.

    Each test process hands out the same URLs test after test (the same file names in its own
    folder, the same database names on the server), each new and dropped after its test. The
    process's engine for a URL outlives the test (``db.session.engine_for``), so the statements it
    compiled for one test are reused by the next instead of being compiled again.
    """

    __test__ = False  # not a test class, whatever its name

    def __init__(
        self, folder: Path, server: PostgresServer | None, template: MigratedTemplate
    ) -> None:
        self.folder = folder
        self.server = server
        self.template = template
        self.created: list[str] = []

    def new(self, name: str = "licensing", *, migrated: bool = False) -> str:
        if self.server is None:
            path = self.folder / f"{name}.db"
            if migrated:
                self.template.copy_to_file(path)
            url = f"sqlite:///{path}"
        else:
            url = self.server.create(
                template=self.template.url if migrated else None,
                name=f"licensing_test_{_PROCESS_TAG}_{len(self.created)}",
            )
        self.created.append(url)
        return url

    def drop_all(self) -> None:
        for url in self.created:
            if self.server is not None:
                self.server.drop(url)
                continue
            database = Path(make_url(url).database or "")
            for path in (database, *(Path(f"{database}{end}") for end in ("-wal", "-shm"))):
                path.unlink(missing_ok=True)


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


def unreachable_database(like: Database, folder: Path) -> Database:
    """A database of the same kind as ``like`` that cannot be reached, as when the server went
    away: a SQLite "file" that is a folder, or a PostgreSQL server that is not listening (port 1
    refuses at once)."""
    if like.is_sqlite:
        return Database(f"sqlite:///{folder}")
    return Database("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
