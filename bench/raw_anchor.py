"""The raw anchors: what the driver alone does, for the benchmarks' ratios (SPEC section 8).

    .venv/bin/python bench/raw_anchor.py serve --port 8000 [--workers 4]
    .venv/bin/python bench/raw_anchor.py bulk-load --rows 1000000 [--postgres SERVER_URL]

**serve**: a Starlette JSON endpoint, ``POST /dashboard`` (GET too), answering the same numbers as
the dashboard query and bench/bare_dashboard.py (license, usage and alerts of the caller's
district) with the driver alone: stdlib ``sqlite3`` on SQLite, psycopg on PostgreSQL, no ORM and
no SQLAlchemy, and one SQL statement per request (the token, the district, its license, settings,
sync state, usage and open alerts, joined). The figures derived from those columns come from the
same pure rules (``licensing.domain.rules``). It finds the database as the service does:
``LICENSING_DATABASE_URL`` (``sqlite:///...`` or ``postgresql+psycopg://...``), else
``licensing.db`` in ``LICENSING_DATA_DIR`` (default ``.data``). As an application for uvicorn:
``uvicorn bench.raw_anchor:create_app --factory``.

**bulk-load**: the driver alone inserting N roster-shaped rows (the columns of the product's
``roster_record`` table) into a new table with that table's indexes (its primary key, its unique
key, its person index, its partial indexes of disabled and of counted records, and on PostgreSQL
the trigram index of the search text), in one transaction: ``executemany`` with stdlib ``sqlite3`` into a new
SQLite file (WAL, ``synchronous=NORMAL``, as the service sets it), or ``COPY ... FROM STDIN`` with
psycopg into a new database on the PostgreSQL server named by ``--postgres``. It reports rows per
second and the process's peak memory; ``--json`` prints them for another benchmark to read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from licensing.domain import rules  # noqa: E402

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request

# Starlette is imported by create_app alone: the bulk load's peak memory is the driver's.

# One statement: one row per open alert (or one row, its alert columns empty, when none is open).
DASHBOARD = (
    "SELECT district.time_zone, license.licensed_to, license.total, license.expires_on, "
    "license.deactivated, license.overage_allowance, "
    "license_settings.students_remaining_threshold, license_sync_state.failing_since, "
    "district_usage.active_students, district_usage.inactive_students, district_usage.staff, "
    "district_usage.devices, alert.kind, alert.severity, alert.message, alert.placements "
    "FROM api_token "
    "JOIN district ON district.id = api_token.district_id "
    "JOIN license ON license.district_id = district.id "
    "LEFT JOIN license_settings ON license_settings.district_id = district.id "
    "LEFT JOIN license_sync_state ON license_sync_state.district_id = district.id "
    "LEFT JOIN district_usage ON district_usage.district_id = district.id "
    "LEFT JOIN alert ON alert.district_id = district.id AND alert.resolved_at IS NULL "
    "WHERE api_token.token_hash = {0} AND api_token.revoked_at IS NULL "
    "ORDER BY alert.id"
)
# PostgreSQL connections per worker: requests take turns on them.
POSTGRES_CONNECTIONS = 8

# --- The dashboard endpoint --------------------------------------------------------------------


def database_url() -> str:
    """The service's database, found the way its settings find it (environment only)."""
    url = os.environ.get("LICENSING_DATABASE_URL", "")
    if url:
        return url
    data_dir = Path(os.environ.get("LICENSING_DATA_DIR", ".data"))
    return f"sqlite:///{data_dir / 'licensing.db'}"


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def dashboard_numbers(rows: list[tuple[Any, ...]]) -> dict[str, Any] | None:
    """The dashboard's JSON from the statement's rows, or None when the token matched nothing."""
    if not rows:
        return None
    (
        time_zone,
        licensed_to,
        total,
        expires_on_value,
        deactivated,
        overage_allowance,
        threshold_value,
        failing_since,
        active,
        inactive,
        staff,
        devices,
    ) = rows[0][:12]
    now = datetime.now(UTC)
    used = active or 0
    threshold = threshold_value or rules.DEFAULT_THRESHOLD
    expires_on = _as_date(expires_on_value)
    status = rules.license_status(
        deactivated=bool(deactivated), expires_on=expires_on, now=now, time_zone=time_zone
    )
    return {
        "license": {
            "status": status.name,
            "licensedTo": licensed_to,
            "used": used,
            "total": total,
            "remaining": rules.remaining_licenses(used, total),
            "display": rules.usage_display(used, total),
            "level": rules.usage_level(used, total, threshold).name,
            "accessLevel": rules.access_level(
                status=status, used=used, total=total, overage_allowance=overage_allowance
            ).name,
            "expiresAt": expires_on.isoformat(),
            "daysUntilExpiration": rules.days_until_expiration(
                expires_on=expires_on, now=now, time_zone=time_zone
            ),
            "stale": failing_since is not None,
        },
        "usage": {
            "activeStudents": used,
            "inactiveStudents": inactive or 0,
            "staff": staff or 0,
            "devices": devices or 0,
        },
        "alerts": [
            {
                "kind": row[12],
                "severity": row[13],
                "message": row[14],
                "placements": row[15].split(","),
            }
            for row in rows
            if row[12] is not None
        ],
    }


def _bearer_hash(request: Request) -> str | None:
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme != "Bearer":
        return None
    return hashlib.sha256(secret.strip().encode("utf-8")).hexdigest()


def _sqlite_reader(path: str) -> Callable[[str], list[tuple[Any, ...]]]:
    # One connection per worker, used from the event loop's thread: the statement takes well
    # under a millisecond, less than handing it to a thread would.
    connection = sqlite3.connect(path, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout=15000")
    statement = DASHBOARD.format("?")

    def read(token_hash: str) -> list[tuple[Any, ...]]:
        return connection.execute(statement, (token_hash,)).fetchall()

    return read


def create_app() -> Starlette:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    url = database_url()
    scheme = urlsplit(url).scheme
    if scheme.startswith("sqlite"):
        read_sqlite = _sqlite_reader(unquote(url.split(":///", 1)[1]))

        async def read(token_hash: str) -> list[tuple[Any, ...]]:
            return read_sqlite(token_hash)

        lifespan = None
    elif scheme.startswith("postgresql"):
        import psycopg

        conninfo = url.replace(scheme, "postgresql", 1)
        statement = DASHBOARD.format("%s")
        idle: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()

        async def read(token_hash: str) -> list[tuple[Any, ...]]:
            connection = await idle.get()
            try:
                cursor = await connection.execute(statement, (token_hash,), prepare=True)
                return await cursor.fetchall()
            finally:
                idle.put_nowait(connection)

        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            opened = [
                await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
                for _ in range(POSTGRES_CONNECTIONS)
            ]
            for connection in opened:
                idle.put_nowait(connection)
            try:
                yield
            finally:
                for connection in opened:
                    await connection.close()

    else:
        raise SystemExit(f"Unsupported database URL scheme {scheme!r}: sqlite or postgresql.")

    async def dashboard(request: Request) -> JSONResponse:
        token_hash = _bearer_hash(request)
        numbers = dashboard_numbers(await read(token_hash)) if token_hash else None
        if numbers is None:
            return JSONResponse({"error": "unauthenticated"}, status_code=401)
        return JSONResponse({"data": numbers})

    return Starlette(
        routes=[Route("/dashboard", dashboard, methods=["GET", "POST"])], lifespan=lifespan
    )


# --- The bulk-load anchor ----------------------------------------------------------------------

COLUMNS = (
    "district_id",
    "source",
    "source_id",
    "person_key",
    "role",
    "lifecycle",
    "enabled",
    "raw_status",
    "given_name",
    "family_name",
    "username",
    "grade",
    "school",
    "schools",
    "graduation_year",
    "enrollment_end",
    "last_modified",
)
# The product's roster_record table (db/models.py, RosterRecord) with its primary key, its unique
# key, its person index, its index of disabled records and its two indexes of counted records
# (and on PostgreSQL the migrations' trigram index of the search text); run() checks these
# against the model, so they cannot drift apart.
UNIQUE_KEY = ("district_id", "source", "source_id")
PERSON_INDEX = ("district_id", "person_key")
DISABLED_INDEX = ("district_id", "source", "id")
COUNTED_INDEX = ("district_id", "id")
COUNTED_MODIFIED_INDEX = ("district_id", "last_modified")
TABLE_SQLITE = """
CREATE TABLE roster_record (
    id INTEGER NOT NULL PRIMARY KEY, district_id INTEGER NOT NULL, source VARCHAR(64) NOT NULL,
    source_id VARCHAR(255) NOT NULL, person_key VARCHAR(255) NOT NULL, role VARCHAR(16) NOT NULL,
    lifecycle VARCHAR(32) NOT NULL, enabled BOOLEAN NOT NULL, raw_status VARCHAR(64),
    given_name VARCHAR(200), family_name VARCHAR(200), username VARCHAR(255), grade VARCHAR(16),
    school VARCHAR(255), schools VARCHAR(2000), graduation_year INTEGER, enrollment_end DATE,
    last_modified DATETIME, UNIQUE (district_id, source, source_id))
"""
TABLE_POSTGRES = """
CREATE TABLE roster_record (
    id SERIAL NOT NULL PRIMARY KEY, district_id INTEGER NOT NULL, source VARCHAR(64) NOT NULL,
    source_id VARCHAR(255) NOT NULL, person_key VARCHAR(255) NOT NULL, role VARCHAR(16) NOT NULL,
    lifecycle VARCHAR(32) NOT NULL, enabled BOOLEAN NOT NULL, raw_status VARCHAR(64),
    given_name VARCHAR(200), family_name VARCHAR(200), username VARCHAR(255), grade VARCHAR(16),
    school VARCHAR(255), schools VARCHAR(2000), graduation_year INTEGER, enrollment_end DATE,
    last_modified TIMESTAMP WITHOUT TIME ZONE, UNIQUE (district_id, source, source_id))
"""
PERSON_INDEX_SQL = "CREATE INDEX ix_roster_record_person ON roster_record (district_id, person_key)"
# Partial, as in the product: only disabled records (few) are in it.
DISABLED_INDEX_SQLITE = (
    "CREATE INDEX ix_roster_record_disabled ON roster_record (district_id, source, id) "
    "WHERE enabled = 0"
)
DISABLED_INDEX_POSTGRES = (
    "CREATE INDEX ix_roster_record_disabled ON roster_record (district_id, source, id) "
    "WHERE NOT enabled"
)
# Partial, as in the product: only the records that count (db/rules_sql.py).
COUNTED_INDEXES_SQLITE = [
    "CREATE INDEX ix_roster_record_counted ON roster_record (district_id, id) "
    "WHERE role = 'student' AND lifecycle = 'active' AND enabled = 1",
    "CREATE INDEX ix_roster_record_counted_modified ON roster_record (district_id, "
    "last_modified) WHERE role = 'student' AND lifecycle = 'active' AND enabled = 1",
]
COUNTED_INDEXES_POSTGRES = [
    "CREATE INDEX ix_roster_record_counted ON roster_record (district_id, id) "
    "WHERE role = 'student' AND lifecycle = 'active' AND enabled",
    "CREATE INDEX ix_roster_record_counted_modified ON roster_record (district_id, "
    "last_modified) WHERE role = 'student' AND lifecycle = 'active' AND enabled",
]
# The migrations' trigram index of the search text (db/search_sql.py), PostgreSQL only.
SEARCH_INDEX_POSTGRES = (
    "CREATE INDEX ix_roster_record_search ON roster_record USING gin ((lower(coalesce("
    "given_name, '') || ' ' || coalesce(family_name, '') || '|' || coalesce(username, '') || "
    "'|' || source_id)) gin_trgm_ops)"
)
SCHOOLS = [f"org{number}" for number in range(1, 41)]


def check_same_indexes() -> None:
    """The anchor's table must keep the product's indexes, or the ratio compares different work."""
    from db.models import RosterRecord

    table = RosterRecord.__table__  # type: ignore[attr-defined]
    unique = {
        tuple(column.name for column in constraint.columns)
        for constraint in table.constraints
        if constraint.__class__.__name__ == "UniqueConstraint"
    }
    indexes = {tuple(column.name for column in index.columns) for index in table.indexes}
    columns = tuple(column.name for column in table.columns if column.name != "id")
    if (
        unique != {UNIQUE_KEY}
        or indexes != {PERSON_INDEX, DISABLED_INDEX, COUNTED_INDEX, COUNTED_MODIFIED_INDEX}
        or set(columns) != set(COLUMNS)
    ):
        raise SystemExit(
            "bench/raw_anchor.py's roster table no longer matches db/models.py's RosterRecord: "
            f"unique keys {sorted(unique)}, indexes {sorted(indexes)}, columns {columns}."
        )


def roster_rows(rows: int, *, iso_dates: bool) -> Iterator[tuple[Any, ...]]:
    """Roster-shaped rows as the product stores them: students, then 5% staff, then guardians."""
    modified: Any = datetime(2026, 8, 15, 9, 30)
    if iso_dates:
        modified = modified.isoformat(sep=" ")
    for number in range(rows):
        role = "student" if number % 100 < 94 else ("staff" if number % 100 < 99 else "guardian")
        school = SCHOOLS[number % len(SCHOOLS)]
        source_id = f"stu-{number:08d}"
        grade = f"{number % 12 + 1:02d}" if role == "student" else None
        yield (
            1,
            "sis",
            source_id,
            source_id,
            role,
            "active",
            number % 100 != 11,
            "active",
            "Given",
            f"Family{number % 997}",
            f"student{number}",
            grade,
            school,
            f"{school},{SCHOOLS[(number + 1) % len(SCHOOLS)]}" if number % 20 == 0 else school,
            2039 - number % 12 if grade else None,
            None,
            modified,
        )


def bulk_load_sqlite(rows: int, folder: Path) -> float:
    connection = sqlite3.connect(folder / "anchor.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(TABLE_SQLITE)
    connection.execute(PERSON_INDEX_SQL)
    connection.execute(DISABLED_INDEX_SQLITE)
    for statement in COUNTED_INDEXES_SQLITE:
        connection.execute(statement)
    insert = (
        f"INSERT INTO roster_record ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in COLUMNS)})"
    )
    started = time.perf_counter()
    connection.execute("BEGIN")
    connection.executemany(insert, roster_rows(rows, iso_dates=True))
    connection.execute("COMMIT")
    seconds = time.perf_counter() - started
    connection.close()
    return seconds


def bulk_load_postgres(rows: int, server_url: str) -> float:
    import psycopg

    from bench.postgres import fresh_database, libpq_conninfo

    with (
        fresh_database(server_url, prefix="licensing_anchor") as url,
        psycopg.connect(libpq_conninfo(url)) as connection,
    ):
        connection.execute(TABLE_POSTGRES)
        connection.execute(PERSON_INDEX_SQL)
        connection.execute(DISABLED_INDEX_POSTGRES)
        for statement in COUNTED_INDEXES_POSTGRES:
            connection.execute(statement)
        connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        connection.execute(SEARCH_INDEX_POSTGRES)
        connection.commit()
        started = time.perf_counter()
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY roster_record ({', '.join(COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in roster_rows(rows, iso_dates=False):
                copy.write_row(row)
        connection.commit()
        return time.perf_counter() - started


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux, in bytes on macOS.
    scale = 1 if platform.system() == "Darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1_000_000


def bulk_load(rows: int, postgres: str | None) -> dict[str, Any]:
    """Load ``rows`` rows; the figures (seconds, rows/s, peak memory in MB)."""
    baseline_mb = peak_rss_mb()
    if postgres:
        seconds = bulk_load_postgres(rows, postgres)
    else:
        with tempfile.TemporaryDirectory(prefix="licensing-anchor-") as folder:
            seconds = bulk_load_sqlite(rows, Path(folder))
    figures = {
        "rows": rows,
        "seconds": seconds,
        "rows_per_second": rows / seconds,
        "baseline_mb": baseline_mb,
        "peak_mb": peak_rss_mb(),
        "database": "PostgreSQL" if postgres else "SQLite",
    }
    # After the peak is read: the product's model (SQLModel) costs more memory than the load.
    check_same_indexes()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the raw dashboard endpoint with uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    load = commands.add_parser("bulk-load", help="insert roster rows with the driver alone")
    load.add_argument("--rows", type=int, default=1_000_000)
    load.add_argument(
        "--postgres", metavar="SERVER_URL", help="load into a new database on this server"
    )
    load.add_argument("--json", action="store_true", help="print the figures as JSON")
    arguments = parser.parse_args()
    if arguments.command == "serve":
        from app.uvicorn_compat import run

        run(
            "bench.raw_anchor:create_app",
            factory=True,
            host=arguments.host,
            port=arguments.port,
            workers=arguments.workers,
            log_level="warning",
        )
        return
    figures = bulk_load(arguments.rows, arguments.postgres)
    if arguments.json:
        print(json.dumps(figures))
    else:
        print(
            f"{figures['database']}: {figures['rows']:,} rows in {figures['seconds']:.2f} s, "
            f"{figures['rows_per_second']:,.0f} rows/s, peak {figures['peak_mb']:,.0f} MB"
        )


if __name__ == "__main__":
    main()
