"""Benchmark: export the active-student report of a district of N students to CSV.

    .venv/bin/python bench/report_export.py --students 1000000
    .venv/bin/python bench/report_export.py --students 1000000 --format json

It creates a temporary SQLite database holding one district with N active, enabled students (plus
5% staff and 2% graduated students, who must be left out), inserted in one write transaction from
a generator. It then runs the export exactly as an administrator does, in a fresh process:
``licensing report active-students --district bench --output FILE``, the same code that streams
the dashboard's CSV download. It prints the rows exported, the seconds taken (the whole command,
interpreter start-up included), rows per second, and the command's peak memory (its peak resident
set size from ``getrusage``), against the target of issue 7: 1,000,000 rows under 200 MB.

``--via download`` exports through the dashboard's download instead: a fresh process builds the
application and calls GET /reports/active-students.csv on it directly (ASGI, no network), writing
each chunk to the file as it is sent.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.runtime import build_service
from db import queries
from licensing.settings import Settings
from licensing.storage.districts import create_district
from licensing.storage.roster import refresh_usage

REPOSITORY = Path(__file__).resolve().parents[1]
SLUG = "bench"
TARGET_MB = 200
SCHOOLS = [f"School {number}" for number in range(1, 41)]
GIVEN_NAMES = ["Ava", "Ben", "Chloe", "Diego", "Emma", "Farah", "Gus", "Hana", "Ivan", "Jade"]
MODIFIED = datetime(2026, 8, 15, 9, 30, tzinfo=UTC)
# ru_maxrss is in kilobytes on Linux (bytes on macOS).
RSS_SCALE = 1 if sys.platform == "darwin" else 1024


def roster_rows(district_id: int, students: int) -> Iterator[dict[str, Any]]:
    """N active, enabled students, then staff and graduated students, one row at a time."""

    def person(number: int, kind: str, role: str, lifecycle: str) -> dict[str, Any]:
        school = SCHOOLS[number % len(SCHOOLS)]
        grade = number % 12 + 1
        source_id = f"{kind}-{number:08d}"
        return {
            "district_id": district_id,
            "source": "sis",
            "source_id": source_id,
            "person_key": source_id,
            "role": role,
            "lifecycle": lifecycle,
            "enabled": True,
            "raw_status": lifecycle,
            "given_name": GIVEN_NAMES[number % len(GIVEN_NAMES)],
            "family_name": f"Family{number % 997}",
            "username": f"{kind}{number}",
            "grade": f"{grade:02d}" if role == "student" else None,
            "school": school,
            # One person in twenty is in two schools.
            "schools": f"{school},{SCHOOLS[(number + 1) % len(SCHOOLS)]}"
            if number % 20 == 0
            else school,
            "graduation_year": 2027 + 12 - grade if role == "student" else None,
            "enrollment_end": None,
            "last_modified": MODIFIED,
        }

    for number in range(students):
        yield person(number, "stu", "student", "active")
    for number in range(students // 20):
        yield person(number, "staff", "staff", "active")
    for number in range(students // 50):
        yield person(number, "grad", "student", "graduated")


def create_database(data_dir: Path, students: int) -> float:
    """The benchmark district in a new database under ``data_dir``; the seconds it took."""
    service = build_service(Settings(data_dir=data_dir), upgrade_schema=True)
    started = time.perf_counter()
    with service.database.write() as session:
        district_id = create_district(
            session,
            slug=SLUG,
            official_name="Benchmark District",
            time_zone="UTC",
            now=service.clock(),
        ).id
        queries.replace_roster_rows(
            session,
            district_id=district_id,
            source="sis",
            rows=roster_rows(district_id, students),
        )
        counts = refresh_usage(session, district_id=district_id, now=service.clock())
    seconds = time.perf_counter() - started
    service.database.dispose()
    if counts.active_students != students:
        raise SystemExit(
            f"Expected {students:,} active students, counted {counts.active_students:,}"
        )
    return seconds


@dataclass(frozen=True)
class ExportRun:
    """One export in a fresh process: its seconds (start-up included), its messages (standard
    error) and its own peak resident set."""

    seconds: float
    messages: str
    peak_mb: float


def run_export(
    data_dir: Path,
    output: Path,
    export_format: str,
    via: str,
    *,
    database_url: str = "",
    extra: Sequence[str] = (),
) -> ExportRun:
    """Run the export in a fresh process, on the database under ``data_dir`` or at
    ``database_url``; ``extra``: more options of the command (filters)."""
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith("LICENSING_")},
        "LICENSING_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(REPOSITORY),
    }
    if database_url:
        environment["LICENSING_DATABASE_URL"] = database_url
    if via == "download":
        command = [sys.executable, __file__, "--download-to", str(output)]
    else:
        command = [
            sys.executable,
            "-c",
            "from app.cli import main; main()",
            "report",
            "active-students",
            "--district",
            SLUG,
            "--format",
            export_format,
            "--output",
            str(output),
            *extra,
        ]
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as messages:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=data_dir,  # no licensing.toml of the developer's is read
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=messages,
            text=True,
        )
        # wait4: this child's own peak, not the largest of every child so far.
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        messages.seek(0)
        text = messages.read().strip()
    if process.returncode != 0:
        raise SystemExit(f"The export failed ({process.returncode}):\n{text}")
    return ExportRun(
        seconds=seconds, messages=text, peak_mb=usage.ru_maxrss * RSS_SCALE / 1_000_000
    )


def download_to(output: Path) -> None:
    """In the child process: GET the CSV download from the application, chunk by chunk."""
    import anyio
    from sqlmodel import select

    from app.factory import create_app
    from app.report_export import REPORT_PATH
    from db.models import District
    from licensing.settings import load_settings
    from licensing.storage.tokens import Permission, create_token

    service = build_service(load_settings())
    with service.database.write() as session:
        district = session.exec(select(District).where(District.slug == SLUG)).one()
        _token, secret = create_token(
            session,
            district=district,
            name="benchmark",
            permissions={Permission.MANAGE_SETTINGS},
            now=service.clock(),
        )
    app = create_app(service)
    done = anyio.Event()
    status: list[int] = []
    requested: list[bool] = []

    async def receive() -> dict[str, Any]:
        # The request once; then nothing until the response is complete (no early disconnect).
        if not requested:
            requested.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def fetch() -> None:
        with open(output, "wb") as handle:

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])
                elif message["type"] == "http.response.body":
                    handle.write(message.get("body", b""))
                    if not message.get("more_body", False):
                        done.set()

            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": REPORT_PATH,
                "raw_path": REPORT_PATH.encode(),
                "query_string": b"",
                "root_path": "",
                "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {secret}".encode())],
                "client": ("127.0.0.1", 50000),
                "server": ("bench", 80),
            }
            await app(scope, receive, send)

    anyio.run(fetch)
    service.database.dispose()
    if status != [200]:
        raise SystemExit(f"The download answered {status}.")
    print(f"Downloaded GET {REPORT_PATH} to {output}.", file=sys.stderr)


def count_rows(path: Path, export_format: str) -> int:
    with open(path, "rb") as handle:
        lines = sum(1 for _line in handle)
    return lines - 1 if export_format == "csv" else lines


def peak_rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss * RSS_SCALE / 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100_000)
    parser.add_argument("--format", choices=("csv", "json"), default="csv", dest="export_format")
    parser.add_argument(
        "--via",
        choices=("command", "download"),
        default="command",
        help="export with `licensing report active-students` (default) or the CSV download",
    )
    parser.add_argument("--download-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.download_to is not None:
        download_to(args.download_to)
        return
    if args.via == "download" and args.export_format != "csv":
        parser.error("the download is CSV only")

    with tempfile.TemporaryDirectory(prefix="report-export-bench-") as temporary:
        data_dir = Path(temporary) / "data"
        data_dir.mkdir()
        setup_seconds = create_database(data_dir, args.students)
        database_mb = (data_dir / "licensing.db").stat().st_size / 1_000_000
        setup_rss = peak_rss_mb(resource.RUSAGE_SELF)

        output = Path(temporary) / f"active-students.{args.export_format}"
        export = run_export(data_dir, output, args.export_format, args.via)
        seconds, messages, export_rss = export.seconds, export.messages, export.peak_mb
        rows = count_rows(output, args.export_format)
        output_mb = output.stat().st_size / 1_000_000

    print(
        f"Active-student export ({args.export_format}, via {args.via}): "
        f"{args.students:,} active students "
        f"(+{args.students // 20:,} staff, +{args.students // 50:,} graduated, left out)"
    )
    print(
        f"database {database_mb:,.0f} MB, built in {setup_seconds:.1f} s (peak {setup_rss:.0f} MB)"
    )
    print(f"command: {messages}")
    print()
    print(f"{'rows':>10} {'seconds':>8} {'rows/s':>10} {'file MB':>8} {'peak RSS MB':>12}")
    print(
        f"{rows:>10,} {seconds:>8.2f} {rows / seconds:>10,.0f} {output_mb:>8,.0f} "
        f"{export_rss:>12,.1f}"
    )
    if rows != args.students:
        raise SystemExit(f"\nExported {rows:,} rows, expected {args.students:,}.")
    verdict = "under" if export_rss < TARGET_MB else "OVER"
    print(f"\nPeak RSS of the export {export_rss:,.1f} MB: {verdict} the {TARGET_MB} MB target.")


if __name__ == "__main__":
    main()
