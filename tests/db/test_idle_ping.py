"""PostgreSQL connections are pinged before use only after they sat idle in the pool
(db/session.py, ``PING_AFTER_IDLE_SECONDS``): a connection the server closed while it was idle
is replaced before the statement runs, and a pool in steady use sends no ping at all."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import exc, text

import db.session
from db.session import Database
from tests.utils.databases import skip_unless_postgres

BACKEND_PID = text("SELECT pg_backend_pid()")


@pytest.fixture
def database(new_database_url: Callable[..., str]) -> Iterator[Database]:
    skip_unless_postgres()
    database = Database(new_database_url(migrated=True))
    yield database
    database.dispose()


@pytest.fixture
def pings(database: Database, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Each ping the pool sends, counted."""
    sent: list[object] = []
    ping = database.engine.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        sent.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(database.engine.dialect, "do_ping", counted)
    return sent


def backend_pid(database: Database) -> int:
    with database.engine.connect() as connection:
        return connection.execute(BACKEND_PID).scalar_one()


def closed_by_the_server_while_idle(database: Database) -> int:
    """Put a connection back in the pool and have the server close it there, as a restart or a
    firewall's idle timeout would; its backend's pid. The pool hands it out next (first in,
    first out)."""
    idle = database.engine.connect()
    pid = idle.execute(BACKEND_PID).scalar_one()
    other = database.engine.connect()
    idle.close()
    other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    other.commit()
    other.close()
    return pid


def test_a_connection_closed_while_idle_is_replaced_before_the_statement(
    database: Database, pings: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = closed_by_the_server_while_idle(database)
    monkeypatch.setattr(db.session, "PING_AFTER_IDLE_SECONDS", 0.0)

    replaced = backend_pid(database)

    assert replaced != closed
    assert len(pings) == 1


def test_a_pool_in_steady_use_sends_no_ping(
    database: Database, pings: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db.session, "PING_AFTER_IDLE_SECONDS", 3600.0)

    pids = {backend_pid(database) for _ in range(5)}

    assert len(pids) == 1
    assert pings == []


def test_a_connection_closed_within_the_idle_time_fails_once_and_the_pool_recovers(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db.session, "PING_AFTER_IDLE_SECONDS", 3600.0)
    closed = closed_by_the_server_while_idle(database)

    with pytest.raises(exc.OperationalError) as failed:
        backend_pid(database)

    assert failed.value.connection_invalidated
    assert backend_pid(database) != closed
