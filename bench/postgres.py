"""PostgreSQL for the benchmarks: a throwaway cluster, and a fresh database per measurement.

``throwaway_cluster()`` starts a cluster the way the CI script does (Debian's packages: initdb into
a temporary folder, a free port on 127.0.0.1, fsync off, a superuser role with a random password)
and stops and removes it when the block ends, also on Ctrl-C or an error. ``fresh_database(url)``
creates a database on a server, yields its URL, and drops it afterwards.

A benchmark script takes ``--postgres SERVER_URL`` (a role that may create databases) and then
measures on PostgreSQL, each database its own; ``bench/run.py`` passes the cluster's URL.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

# psycopg and SQLAlchemy are imported where they are used: a benchmark step that never touches
# PostgreSQL keeps its peak memory free of them.

# The product and the anchors run this many uvicorn workers on PostgreSQL (SPEC section 8).
POSTGRES_WORKERS = 4
SQLITE_WORKERS = 1
# A smoke run (--quick) on PostgreSQL: still several workers, the path a full run takes, but
# fewer processes to start (each imports the application).
QUICK_POSTGRES_WORKERS = 2


def database_name(url: str | None) -> str:
    """``SQLite`` or ``PostgreSQL``, for the tables."""
    return "PostgreSQL" if url else "SQLite"


def default_workers(postgres: str | None, *, quick: bool = False) -> int:
    if not postgres:
        return SQLITE_WORKERS
    return QUICK_POSTGRES_WORKERS if quick else POSTGRES_WORKERS


def libpq_conninfo(url: str) -> str:
    """A SQLAlchemy ``postgresql+psycopg://`` URL as the plain ``postgresql://`` URL psycopg takes."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def postgres_binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian's layout), or None."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def throwaway_cluster() -> Iterator[str | None]:
    """A new PostgreSQL cluster on a free local port: yields its server URL (a superuser), or
    None, with a one-line message, when PostgreSQL's binaries are not installed."""
    binaries = postgres_binaries()
    if binaries is None:
        print(
            "PostgreSQL is not installed (no pg_ctl): the benchmarks run on SQLite only.",
            file=sys.stderr,
            flush=True,
        )
        yield None
        return
    # initdb refuses to run as root: then the cluster belongs to Debian's postgres user.
    as_root = os.geteuid() == 0
    owner = "postgres" if as_root else None

    def run(*command: str) -> None:
        if as_root:
            command = ("runuser", "-u", "postgres", "--", *command)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    folder = Path(tempfile.mkdtemp(prefix="licensing-bench-postgres-"))
    data = folder / "data"
    port = _free_port()
    password = secrets.token_hex(16)
    started = False
    try:
        if owner:
            shutil.chown(folder, user=owner)
        folder.chmod(0o700)
        password_file = folder / "password"
        password_file.write_text(password + "\n")
        if owner:
            shutil.chown(password_file, user=owner)
        run(
            *(str(binaries / "initdb"), "-D", str(data), "-U", "bench", "--no-sync"),
            *("--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}"),
        )
        # Durability is not wanted from a cluster that lives for one run, as in CI.
        options = (
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=300 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c shared_buffers=256MB"
        )
        run(
            str(binaries / "pg_ctl"),
            *("-D", str(data), "-l", str(folder / "server.log"), "-w", "-o", options, "start"),
        )
        started = True
        print(f"PostgreSQL: a throwaway cluster on 127.0.0.1:{port}", file=sys.stderr, flush=True)
        yield f"postgresql+psycopg://bench:{password}@127.0.0.1:{port}/postgres"
    finally:
        if started:
            with suppress(subprocess.CalledProcessError):
                run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def server_version(server_url: str) -> str:
    import psycopg

    with psycopg.connect(libpq_conninfo(server_url), autocommit=True) as connection:
        return str(connection.execute("SHOW server_version").fetchone()[0]).split()[0]


@contextmanager
def fresh_database(server_url: str, prefix: str = "licensing_bench") -> Iterator[str]:
    """A new empty database on the server named by ``server_url``; yields its SQLAlchemy URL and
    drops it when the block ends (closing any session a server left open)."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conninfo = libpq_conninfo(server_url)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
