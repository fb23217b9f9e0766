"""The one engine and session factory of a process.

SQLite is set up for a server: WAL so readers never wait for the writer, a busy timeout instead of
"database is locked", foreign keys on, and write transactions that take the write lock when they
begin (``BEGIN IMMEDIATE``) so two writers cannot deadlock upgrading a read lock.

PostgreSQL runs write transactions at READ COMMITTED, so several run at once. The sections that
read a district's state and then write on its strength (the force-update cooldown claim, applying
a license, a roster or a threshold, alert reconciliation) first take ``lock_district``: an advisory
lock per district, held until commit or rollback, so they take turns per district while other
districts go on. They take it before their first write, so no transaction ever waits for the lock
while holding a row another holder of the lock needs (no deadlock). On SQLite it only begins the
transaction at once: BEGIN IMMEDIATE makes it the only writer.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import Connection, CursorResult, Engine, Result, create_engine, event, exc, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.expression import Executable, Select
from sqlmodel import Session

from db.private_files import create_private_file

SQLITE_POOL_SIZE = 40
# Connections one process keeps to PostgreSQL, at most (docs/deploy.md sizes max_connections by it).
POSTGRES_POOL_SIZE = 15
SQLITE_POOL_OVERFLOW = 10
# A PostgreSQL connection back in the pool for longer than this is checked with a ping before it
# is used again (_ping_after_idle).
PING_AFTER_IDLE_SECONDS = 1.0
_RETURNED_AT = "returned_at"
SQLITE_BUSY_TIMEOUT_MS = 15_000
# The first key of the two-key advisory locks this service takes ("M1" + "LI"); the district id is
# the second, so another application's advisory locks in the same database never collide.
DISTRICT_LOCK_NAMESPACE = 0x4D314C49


class Database:
    """Hands out read sessions and write sessions on the process's engine for its URL."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite and self.url.database and self.url.database != ":memory:":
            # Owner-only before SQLite opens it: SQLite gives the -wal and -shm files the
            # database file's permissions.
            create_private_file(Path(self.url.database))
        self.engine = engine_for(url, is_sqlite=self.is_sqlite)
        write_engine = self.engine.execution_options(begin_immediate=True)
        # One statement alone needs no transaction around it: in autocommit it is one round
        # trip to PostgreSQL, where BEGIN, the statement and COMMIT (or ROLLBACK) take three.
        self._single_statements = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._read_sessions = sessionmaker(self.engine, class_=Session, expire_on_commit=False)
        self._write_sessions = sessionmaker(write_engine, class_=Session, expire_on_commit=False)
        # SQLite: each thread's own autocommit driver connection, for ``read_row``; all of them
        # listed, so that dispose() closes them.
        self._row_readers = threading.local()
        self._row_reader_list: list[sqlite3.Connection] = []
        self._row_readers_lock = threading.Lock()
        self._row_sql: dict[Select[Any], str] = {}

    def read_row(self, statement: Select[Any], parameters: Mapping[str, object]) -> Any:
        """The first row of one short read statement (every request's: the district's version),
        or None. On SQLite it runs on this thread's own autocommit driver connection: one
        statement is one consistent read, and it takes a few tens of microseconds where a
        connection from the pool (BEGIN, the statement, ROLLBACK) takes ten times that. Values
        come as the driver gives them, without SQLAlchemy's type processing: integer and text
        columns only. Elsewhere, a connection from the pool."""
        if not self.is_sqlite:
            return self._alone(statement, parameters)
        if self.url.database in (None, "", ":memory:"):
            # An in-memory SQLite database is private to its connection: the pool's it is.
            with self.engine.connect() as connection:
                return connection.execute(statement, dict(parameters)).first()
        sql = self._row_sql.get(statement)
        if sql is None:
            sql = str(statement.compile(dialect=sqlite.dialect(paramstyle="named")))
            self._row_sql[statement] = sql
        return self._row_reader().execute(sql, parameters).fetchone()

    def _row_reader(self) -> sqlite3.Connection:
        reader = getattr(self._row_readers, "connection", None)
        if reader is None:
            reader = sqlite3.connect(
                str(self.url.database), isolation_level=None, check_same_thread=False
            )
            reader.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            self._row_readers.connection = reader
            with self._row_readers_lock:
                self._row_reader_list.append(reader)
        return reader

    def write_row(self, statement: Executable, parameters: Mapping[str, object]) -> Any:
        """Run one statement that writes, as a transaction of its own, and return the first
        row it returns (``RETURNING``), or None. On PostgreSQL it runs in autocommit: one round
        trip where a transaction around it would take three."""
        if self.is_sqlite:
            with self.engine.begin() as connection:
                return connection.execute(statement, dict(parameters)).first()
        return self._alone(statement, parameters)

    def _alone(self, statement: Executable, parameters: Mapping[str, object]) -> Any:
        """PostgreSQL: the first row of one statement run alone, in autocommit."""
        with self._single_statements.connect() as connection:
            return connection.execute(statement, dict(parameters)).first()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; nothing it does is committed."""
        with self._read_sessions() as session:
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A connection for a few short Core statements (every request's sign-in): a fraction
        of a read session's cost. Nothing it does is committed. On PostgreSQL each statement
        runs alone, in autocommit: at READ COMMITTED each statement of a transaction sees the
        data as of its own start anyway, and there is no BEGIN and ROLLBACK to send."""
        engine = self.engine if self.is_sqlite else self._single_statements
        with engine.connect() as connection:
            yield connection

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose work is committed when the block ends, rolled back if it raises."""
        with self._write_sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close the engine's pooled connections. The engine stays the process's engine for
        this URL: a later ``Database`` on it opens new connections.

        A connection still in use (a read finishing in a worker thread while the service shuts
        down) goes back to the old pool after this; it is closed then, instead of staying open
        until the garbage collector finds it."""
        retired = self.engine.pool
        self.engine.dispose()
        # After dispose(): its listeners move to the new pool, and this one must not.
        event.listen(retired, "checkin", _close_on_return)
        retired.dispose()  # any connection returned before the listener was in place
        with self._row_readers_lock:
            readers, self._row_reader_list = self._row_reader_list, []
            self._row_readers = threading.local()
        for reader in readers:
            reader.close()


class StoredRow(Protocol):
    id: int | None


Row = TypeVar("Row")


def stored_id(row: StoredRow) -> int:
    """The id of a row already flushed to the database. The models type ids ``int | None``
    because a row not yet flushed has none; every caller here has flushed or read the row."""
    if row.id is None:
        raise ValueError(f"this {type(row).__name__} has not been flushed: it has no id yet")
    return row.id


def get_existing(session: Session, model: type[Row], row_id: object) -> Row:
    """The row ``model`` with id ``row_id``, which the caller knows exists."""
    row = session.get(model, row_id)
    if row is None:
        raise LookupError(f"no {model.__name__} with id {row_id}")
    return row


def affected_rows(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed. Such a statement always returns a
    ``CursorResult``; ``Session.execute`` is typed to return the general ``Result``."""
    return cast(CursorResult[Any], result).rowcount


def lock_district(session: Session, district_id: int) -> None:
    """Make the rest of this write transaction wait for, and exclude, any other transaction holding
    the same district's lock. PostgreSQL: ``pg_advisory_xact_lock``, held until commit or rollback
    and re-entrant within a transaction. SQLite: a write transaction is exclusive, so this only
    begins it now (``BEGIN IMMEDIATE``, waiting for the write lock). On both, once this returns
    the caller holds the lock, so a time read after it is later than every earlier holder's.

    Take it before anything in the transaction writes the district's row (its version, which
    every audit entry raises): a transaction that raised the version and then waited for the
    lock deadlocked on PostgreSQL with one that held the lock and went on to raise it."""
    if session.get_bind().dialect.name != "postgresql":
        session.connection()
        return
    session.execute(
        text("SELECT pg_advisory_xact_lock(:namespace, :district_id)"),
        {"namespace": DISTRICT_LOCK_NAMESPACE, "district_id": district_id},
    )


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def engine_for(url: str, *, is_sqlite: bool) -> Engine:
    """The process's one engine for ``url``, made on first use.

    Everything in a process that opens the same database (the service, the scheduler, a command)
    shares one pool, and SQLAlchemy's cache of compiled statements, which lives on the engine:
    a new engine compiles every statement again on first use."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create_engine(url, is_sqlite=is_sqlite)
        return engine


def _create_engine(url: str, *, is_sqlite: bool) -> Engine:
    # hide_parameters: a database error's text would otherwise carry the rows it was given
    # (students' names and ids) into logs and wherever else it is shown.
    if not is_sqlite:
        # Every connection the pool opens stays open, up to its size. SQLAlchemy's default keeps
        # 5 and opens up to 10 more under load, closing each again when it is returned: a worker
        # serving more than 5 requests at once then opened a connection (a server process and a
        # SCRAM exchange, milliseconds) for most of them.
        postgres = create_engine(
            url, hide_parameters=True, pool_size=POSTGRES_POOL_SIZE, max_overflow=0
        )
        event.listen(postgres, "checkin", _note_returned)
        event.listen(postgres, "checkout", _ping_after_idle(postgres.dialect))
        return postgres
    # Requests read from up to 40 threads at once (anyio's default thread limit); a pool smaller
    # than that opens and closes a connection (and its PRAGMAs) for each request over the size.
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False},
        hide_parameters=True,
        pool_size=SQLITE_POOL_SIZE,
        max_overflow=SQLITE_POOL_OVERFLOW,
    )
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _note_returned(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[_RETURNED_AT] = time.monotonic()


def _ping_after_idle(dialect: Dialect) -> Callable[[Any, ConnectionPoolEntry, Any], None]:
    """The pool's checkout listener: ping a connection that sat in the pool for a while before
    it is handed out.

    A connection idle for long may have been closed under it (a database restart, a firewall's
    idle timeout): the ping finds that, and the pool then replaces every connection it holds
    from before (SQLAlchemy's ``InvalidatePoolError``). A connection used within the last
    ``PING_AFTER_IDLE_SECONDS`` is not pinged: ``pool_pre_ping`` pings at every checkout, a
    round trip more for each statement, and a quarter of a busy worker's time. When the
    database restarted within that second, the statement itself fails as a disconnect, which
    invalidates the pool just the same, and the request is answered as any during the outage."""

    def ping_when_idle(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.InvalidatePoolError(f"an idle connection failed its ping: {error}") from error

    return ping_when_idle


def _close_on_return(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.close()


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself, so it can choose IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_sqlite_transaction(connection: Any) -> None:
    immediate = connection.get_execution_options().get("begin_immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
