"""Benchmark: parse a generated OneRoster CSV bundle of N students with the built-in source.

    .venv/bin/python bench/oneroster_csv_sync.py --students 1000000
    .venv/bin/python bench/oneroster_csv_sync.py --students 1000000 --version 1.2 --zip

It writes a bundle (a folder, or a zip with --zip) of N students plus staff and guardians into a
temporary folder, streaming it row by row, then reads it back through ``oneroster_csv`` and
prints the time taken and the peak memory (the process's peak resident set size from
``getrusage``, and with --tracemalloc the peak of Python allocations during the parse).

It then runs the full sync through the service (streamed staging, the atomic swap, the recount)
into a fresh SQLite database, and a second sync of the same bundle (a re-sync with no change).
``--parse-only`` skips the sync. The target (SPEC section 8) is a full sync of 1,000,000 students
in at most 60 s with a peak under 400 MB.
"""

from __future__ import annotations

import argparse
import csv
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugins.builtin.oneroster_csv import (
    ROLES_V1P2,
    USERS_V1P1,
    USERS_V1P2,
    OneRosterCsvSource,
)
from plugins.records import DistrictRef

DISTRICT = DistrictRef(slug="bench", official_name="Benchmark District", time_zone="UTC")
SCHOOLS = [f"org{number}" for number in range(1, 41)]
ROLE_WORDS_V1P2 = {"administrator": "siteAdministrator"}


def people(students: int, staff: int, guardians: int) -> Iterator[dict[str, str]]:
    """The generated roster, one person at a time: a plausible mix of the cases that matter."""
    for number in range(students):
        school = SCHOOLS[number % len(SCHOOLS)]
        status = ""
        if number % 50 == 7:
            status = "tobedeleted"
        elif number % 10 == 3:
            status = "active"
        yield {
            "sourcedId": f"stu-{number:08d}",
            "status": status,
            "dateLastModified": "2026-08-15T09:30:00.000Z",
            "enabledUser": "false" if number % 100 == 11 else "true",
            # One student in twenty is in two schools.
            "orgs": f"{school},{SCHOOLS[(number + 1) % len(SCHOOLS)]}"
            if number % 20 == 0
            else school,
            "role": "student",
            "username": f"student{number}",
            "userIds": f"{{SIS:{100000 + number}}}",
            "givenName": "Given",
            "familyName": f"Family{number % 997}",
            "identifier": f"{100000 + number}",
            "email": f"student{number}@example.org",
            "grades": f"{number % 12 + 1:02d}",
        }
    for number in range(staff):
        yield {
            "sourcedId": f"staff-{number:06d}",
            "status": "",
            "dateLastModified": "2026-08-15T09:30:00.000Z",
            "enabledUser": "true",
            "orgs": SCHOOLS[number % len(SCHOOLS)],
            "role": ("teacher", "administrator", "aide")[number % 3],
            "username": f"staff{number}",
            "givenName": "Staff",
            "familyName": f"Member{number}",
            "identifier": f"E{number}",
            "email": f"staff{number}@example.org",
        }
    for number in range(guardians):
        yield {
            "sourcedId": f"grd-{number:06d}",
            "status": "",
            "enabledUser": "true",
            "orgs": SCHOOLS[number % len(SCHOOLS)],
            "role": "guardian",
            "username": f"guardian{number}",
            "givenName": "Guardian",
            "familyName": f"Person{number}",
        }


def write_bundle(folder: Path, *, students: int, version: str, as_zip: bool) -> Path:
    """Write the bundle row by row (never the whole roster in memory); its path."""
    staff = max(1, students // 20)
    guardians = students // 100
    bundle = folder / "bundle"
    bundle.mkdir()
    manifest = [
        ("propertyName", "value"),
        ("manifest.version", "1.0"),
        ("oneroster.version", version),
        ("file.academicSessions", "absent"),
        ("file.classes", "absent"),
        ("file.enrollments", "absent"),
        ("file.orgs", "absent"),
        ("file.users", "bulk"),
        ("file.roles", "bulk" if version == "1.2" else "absent"),
        ("source.systemName", "bench"),
    ]
    with open(bundle / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(manifest)
    with open(bundle / "users.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        columns = USERS_V1P1 if version == "1.1" else USERS_V1P2
        writer.writerow(columns)
        for person in people(students, staff, guardians):
            fields = {**person, "orgSourcedIds": person["orgs"]}
            if version == "1.2":
                fields["primaryOrgSourcedId"] = person["orgs"].split(",")[0]
            writer.writerow([fields.get(column, "") for column in columns])
    if version == "1.2":
        with open(bundle / "roles.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(ROLES_V1P2)
            number = 0
            for person in people(students, staff, guardians):
                for position, org in enumerate(person["orgs"].split(",")):
                    number += 1
                    row = {
                        "sourcedId": f"role-{number}",
                        "userSourcedId": person["sourcedId"],
                        "roleType": "primary" if position == 0 else "secondary",
                        # 1.2 has no plain "administrator" role.
                        "role": ROLE_WORDS_V1P2.get(person["role"], person["role"]),
                        "orgSourcedId": org,
                        "beginDate": "2025-08-20",
                        "endDate": "2026-06-15",
                    }
                    writer.writerow([row.get(column, "") for column in ROLES_V1P2])
    if not as_zip:
        return bundle
    path = folder / "bundle.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(bundle.iterdir()):
            archive.write(file, arcname=file.name)  # streams the file in chunks
    shutil.rmtree(bundle)
    return path


def parse_bundle(path: Path) -> Counter[str]:
    """Read the bundle through the oneroster_csv source, keeping no record: counts by role and
    status. The storage step (applying the records with the host's rule) belongs here later."""
    counts: Counter[str] = Counter()
    records = OneRosterCsvSource().fetch_students(district=DISTRICT, options={"path": str(path)})
    for record in records:
        counts["records"] += 1
        counts[f"role {record.role}"] += 1
        if record.role == "student" and record.status == "active" and record.enabled:
            counts["active enabled student records"] += 1
    return counts


def sync_bundle(path: Path, data_dir: Path) -> list[tuple[str, float, int]]:
    """Sync the bundle twice through the service: (step, seconds, active students) per sync."""
    import asyncio

    from app.runtime import build_service
    from licensing.districts import create_district
    from licensing.settings import DistrictConfig, RosterSourceConfig, Settings

    settings = Settings(
        data_dir=data_dir,
        districts={
            DISTRICT.slug: DistrictConfig(
                roster_sources={
                    "sis": RosterSourceConfig(kind="oneroster_csv", options={"path": str(path)})
                }
            )
        },
    )
    service = build_service(settings, upgrade_schema=True)
    with service.database.write() as session:
        district_id = create_district(
            session,
            slug=DISTRICT.slug,
            official_name=DISTRICT.official_name,
            time_zone=DISTRICT.time_zone,
            now=service.clock(),
        ).id
    steps = []
    for step in ("sync", "re-sync"):
        started = time.perf_counter()
        outcome = asyncio.run(
            service.roster_sync.sync(district_id=district_id, source="sis", actor="benchmark")
        )
        if outcome.status != "applied":
            raise SystemExit(f"{step} did not apply: {outcome.problem}")
        steps.append((step, time.perf_counter() - started, outcome.active_after or 0))
    service.database.dispose()
    return steps


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100_000)
    parser.add_argument("--version", choices=("1.1", "1.2"), default="1.1")
    parser.add_argument("--zip", action="store_true", help="write and read a .zip bundle")
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also trace Python allocations during the parse (slower; shows the heap's peak)",
    )
    parser.add_argument(
        "--parse-only", action="store_true", help="only parse; skip the sync through the service"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="oneroster-bench-") as temporary:
        rss_start = peak_rss_mb()
        started = time.perf_counter()
        path = write_bundle(
            Path(temporary), students=args.students, version=args.version, as_zip=args.zip
        )
        write_seconds = time.perf_counter() - started
        size_mb = (
            sum(file.stat().st_size for file in ([path] if path.is_file() else path.iterdir()))
            / 1_000_000
        )
        rss_after_write = peak_rss_mb()

        if args.tracemalloc:
            tracemalloc.start()
        started = time.perf_counter()
        counts = parse_bundle(path)
        parse_seconds = time.perf_counter() - started
        heap_peak = tracemalloc.get_traced_memory()[1] / 1_000_000 if args.tracemalloc else None
        tracemalloc.stop()
        rss_after_parse = peak_rss_mb()
        synced = [] if args.parse_only else sync_bundle(path, Path(temporary) / "data")
        rss_after_sync = peak_rss_mb()

    kind = "zip" if args.zip else "folder"
    print(
        f"OneRoster {args.version} CSV bundle ({kind}, {size_mb:,.0f} MB): {args.students:,} students"
    )
    print()
    print(f"{'step':<8} {'seconds':>8} {'records':>10} {'records/s':>10} {'peak RSS MB':>12}")
    print(f"{'start':<8} {'':>8} {'':>10} {'':>10} {rss_start:>12,.1f}")
    print(f"{'write':<8} {write_seconds:>8.2f} {'':>10} {'':>10} {rss_after_write:>12,.1f}")
    records = counts["records"]
    print(
        f"{'parse':<8} {parse_seconds:>8.2f} {records:>10,} "
        f"{records / parse_seconds:>10,.0f} {rss_after_parse:>12,.1f}"
    )
    for step, seconds, active in synced:
        print(
            f"{step:<8} {seconds:>8.2f} {records:>10,} "
            f"{records / seconds:>10,.0f} {rss_after_sync:>12,.1f}   active students {active:,}"
        )
    if heap_peak is not None:
        print(f"\nPython heap peak during the parse (tracemalloc): {heap_peak:,.1f} MB")
    print()
    for name, value in sorted(counts.items()):
        print(f"  {name:<32} {value:>10,}")
    peak = rss_after_sync
    target = "within" if peak < 400 else "OVER"
    print(f"\nPeak RSS {peak:,.1f} MB: {target} the 400 MB target.")
    if synced:
        seconds = synced[0][1]
        verdict = "within" if seconds <= 60 else "OVER"
        print(f"Full sync {seconds:,.1f} s: {verdict} the 60 s target.")


if __name__ == "__main__":
    main()
