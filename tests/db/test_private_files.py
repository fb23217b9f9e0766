"""The SQLite database, its -wal and -shm files and the data folder made for them are readable by
their owner only, whatever the umask; a folder that already exists is left as it was."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from db.session import Database


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The usual umask, which would leave new files readable by every user."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_new_sqlite_database_and_its_folder_are_owner_only(tmp_path, permissive_umask):
    data = tmp_path / "service" / ".data"
    path = data / "licensing.db"
    database = Database(f"sqlite:///{path}")
    try:
        with database.write() as session:
            session.execute(text("CREATE TABLE note (body TEXT)"))
            session.execute(text("INSERT INTO note VALUES ('student names live here')"))
        with database.read() as session:  # the write-ahead log and shared memory now exist
            session.execute(text("SELECT * FROM note")).all()
            files = {name: data / name for name in ("licensing.db", "licensing.db-wal")}
            files["licensing.db-shm"] = data / "licensing.db-shm"
            modes = {name: mode(file) for name, file in files.items()}
    finally:
        database.dispose()

    assert modes == {name: 0o600 for name in files}
    assert mode(data) == 0o700
    assert mode(data.parent) == 0o700  # made for the database too


def test_an_existing_folder_keeps_its_permissions(tmp_path, permissive_umask):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    shared.chmod(0o750)
    database = Database(f"sqlite:///{shared / 'licensing.db'}")
    try:
        with database.write() as session:
            session.execute(text("CREATE TABLE note (body TEXT)"))
    finally:
        database.dispose()

    assert mode(shared) == 0o750
    assert mode(shared / "licensing.db") == 0o600
