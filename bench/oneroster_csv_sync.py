"""Benchmark: a full OneRoster CSV sync, then re-syncs with no change and with 1% changed.

    .venv/bin/python bench/oneroster_csv_sync.py                        # 100,000 and 1,000,000
    .venv/bin/python bench/oneroster_csv_sync.py --students 250000 --bundle folder --version 1.2
    .venv/bin/python bench/oneroster_csv_sync.py --quick --markdown     # as bench/run.py calls it
    .venv/bin/python bench/oneroster_csv_sync.py --postgres postgresql+psycopg://USER:PW@HOST/postgres

For each size it writes two OneRoster bundles of N students plus 5% staff and 1% guardians into a
temporary folder, streaming them row by row: the roster, and the same roster with 1% of its
students changed (see ``people``). Then it runs four steps, each in a fresh process so that the
peak memory reported (the process's peak resident set size, from ``getrusage``) is that step's
own and not an earlier step's:

- parse: read the roster through the ``oneroster_csv`` source, keeping no record;
- full sync: sync it through the service (streamed staging, the one-transaction swap, the
  recount) into a new database: a SQLite file, or with ``--postgres SERVER_URL`` a new database
  on that server (dropped at the end);
- re-sync, no change: sync the same bundle again;
- re-sync, 1% changed: sync the changed bundle.

- bulk-load anchor: the driver alone (``bench/raw_anchor.py bulk-load``: stdlib sqlite3's
  ``executemany``, or psycopg's ``COPY``) inserting as many roster-shaped rows as the bundle has
  records into a new table with the roster table's indexes, on the same database kind.

With ``--quick`` (a smoke run, its figures not compared) the parse and the syncs share one
process, which saves an interpreter's start and the application's imports per step.

The seconds are the step alone (not the interpreter's start). Each sync's count of active
students is checked against the count the generator expects; a wrong count or a failed step
makes the script exit with status 1. The target (SPEC section 8) is a full sync of 1,000,000
students in at most 60 s with a peak under 400 MB, at >= 0.3x the records per second of the
bulk-load anchor measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import tracemalloc
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.postgres import database_name, fresh_database
from bench.tables import markdown_table, show
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
SIZES = (100_000, 1_000_000)
QUICK_SIZES = (2_000,)
TARGET_STUDENTS = 1_000_000
TARGET_SECONDS = 60
TARGET_MB = 400
TARGET_ANCHOR_RATIO = 0.3
# One student in CHANGE_EVERY of each kind of change (removed, disabled, moved and renamed) and as
# many new ones: four kinds of 0.25% each, 1% of the roster.
CHANGE_EVERY = 400
STEPS = {
    "parse": "parse",
    "sync": "full sync",
    "resync": "re-sync, no change",
    "resync-changed": "re-sync, 1% changed",
    "anchor": "bulk-load anchor (driver alone)",
}


def people(
    students: int, staff: int, guardians: int, *, changed: bool = False
) -> Iterator[dict[str, str]]:
    """The generated roster, one person at a time: a plausible mix of the cases that matter.

    With ``changed``, 1% of the students differ: 0.25% left out of the file (removed), 0.25%
    with ``enabledUser`` false (disabled), 0.25% moved to another school under a new family
    name, and 0.25% new students added at the end.
    """
    added = students // CHANGE_EVERY if changed else 0
    for number in range(students + added):
        change = number % CHANGE_EVERY if changed and number < students else 0
        if change == 1:
            continue  # removed
        school = SCHOOLS[number % len(SCHOOLS)]
        family_name = f"Family{number % 997}"
        if change == 3:
            school = SCHOOLS[(number + 7) % len(SCHOOLS)]
            family_name = f"Moved{number % 997}"
        status = ""
        if number % 50 == 7:
            status = "tobedeleted"
        elif number % 10 == 3:
            status = "active"
        yield {
            "sourcedId": f"stu-{number:08d}",
            "status": status,
            "dateLastModified": "2026-08-15T09:30:00.000Z",
            "enabledUser": "false" if number % 100 == 11 or change == 2 else "true",
            # One student in twenty is in two schools.
            "orgs": f"{school},{SCHOOLS[(number + 1) % len(SCHOOLS)]}"
            if number % 20 == 0
            else school,
            "role": "student",
            "username": f"student{number}",
            "userIds": f"{{SIS:{100000 + number}}}",
            "givenName": "Given",
            "familyName": family_name,
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


@dataclass(frozen=True)
class Bundle:
    path: Path
    megabytes: float
    records: int
    active_students: int  # what the host must count: students neither tobedeleted nor disabled


def write_bundle(
    folder: Path, *, students: int, version: str, as_zip: bool, changed: bool = False
) -> Bundle:
    """Write the bundle row by row (never the whole roster in memory)."""
    staff = max(1, students // 20)
    guardians = students // 100
    roster = folder / "bundle"
    roster.mkdir(parents=True)
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
    with open(roster / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(manifest)
    records = active = 0
    with open(roster / "users.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        columns = USERS_V1P1 if version == "1.1" else USERS_V1P2
        writer.writerow(columns)
        for person in people(students, staff, guardians, changed=changed):
            records += 1
            active += (
                person["role"] == "student"
                and person["status"] != "tobedeleted"
                and person["enabledUser"] == "true"
            )
            fields = {**person, "orgSourcedIds": person["orgs"]}
            if version == "1.2":
                fields["primaryOrgSourcedId"] = person["orgs"].split(",")[0]
            writer.writerow([fields.get(column, "") for column in columns])
    if version == "1.2":
        with open(roster / "roles.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(ROLES_V1P2)
            number = 0
            for person in people(students, staff, guardians, changed=changed):
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
    path = roster
    if as_zip:
        path = folder / "bundle.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(roster.iterdir()):
                archive.write(file, arcname=file.name)  # streams the file in chunks
        shutil.rmtree(roster)
    size = sum(file.stat().st_size for file in ([path] if path.is_file() else path.iterdir()))
    return Bundle(path, size / 1_000_000, records, active)


# --- The steps, each in its own process ----------------------------------------------------------


def parse_bundle(path: Path) -> Counter[str]:
    """Read the bundle through the oneroster_csv source, keeping no record: counts by role and
    status."""
    # Imported here: the process that writes the bundles and runs the steps needs neither.
    from licensing.orchestration.plugin_host import plugin_host
    from licensing.settings import Settings

    counts: Counter[str] = Counter()
    source = OneRosterCsvSource(plugin_host(Settings()))
    records = source.fetch_students(district=DISTRICT, options={"path": str(path)})
    for record in records:
        counts["records"] += 1
        counts[f"role {record.role}"] += 1
        if record.role == "student" and record.status == "active" and record.enabled:
            counts["active enabled student records"] += 1
    return counts


def sync_bundle(path: Path, data_dir: Path, database_url: str) -> tuple[float, int, int]:
    """Sync the bundle through the service into the database at ``database_url``, or in
    ``data_dir`` when it is empty (created, with the district, on the first sync): seconds,
    records read, active students after."""
    from sqlmodel import select

    from app.runtime import build_service
    from db.models import District
    from licensing.settings import DistrictConfig, RosterSourceConfig, Settings
    from licensing.storage.districts import create_district

    settings = Settings(
        data_dir=data_dir,
        database_url=database_url or f"sqlite:///{data_dir / 'licensing.db'}",
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
        found = session.exec(select(District).where(District.slug == DISTRICT.slug)).first()
        district_id = (
            found.id
            if found is not None
            else create_district(
                session,
                slug=DISTRICT.slug,
                official_name=DISTRICT.official_name,
                time_zone=DISTRICT.time_zone,
                now=service.clock(),
            ).id
        )
    started = time.perf_counter()
    outcome = asyncio.run(
        service.roster_sync.sync(district_id=district_id, source="sis", actor="benchmark")
    )
    seconds = time.perf_counter() - started
    service.database.dispose()
    if outcome.status != "applied":
        problem = outcome.problem.message if outcome.problem else "no reason given"
        raise SystemExit(f"The sync was {outcome.status}, not applied: {problem}")
    return seconds, outcome.records, outcome.active_after or 0


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux, in bytes on macOS.
    scale = 1 if platform.system() == "Darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1_000_000


def run_step(
    step: str, bundle: Path, data_dir: Path, *, database_url: str, trace: bool
) -> dict[str, Any]:
    """The step's figures; ``baseline_mb`` is the peak before it began (interpreter, imports)."""
    # The step's modules are imported before the baseline.
    if step == "parse":
        import licensing.orchestration.plugin_host
        import licensing.settings  # noqa: F401
    else:
        import app.runtime  # noqa: F401
    result: dict[str, Any] = {"baseline_mb": peak_rss_mb()}
    if step == "parse":
        if trace:
            tracemalloc.start()
        started = time.perf_counter()
        counts = parse_bundle(bundle)
        result["seconds"] = time.perf_counter() - started
        if trace:
            result["heap_peak_mb"] = tracemalloc.get_traced_memory()[1] / 1_000_000
            tracemalloc.stop()
        result["records"] = counts["records"]
        result["active_students"] = counts["active enabled student records"]
    else:
        seconds, records, active = sync_bundle(bundle, data_dir, database_url)
        result.update(seconds=seconds, records=records, active_students=active)
    result["peak_mb"] = peak_rss_mb()
    return result


def run_steps(args: argparse.Namespace) -> None:
    """Run each ``--step`` on its ``--path`` in this process, printing a JSON line for each: its
    figures, or null when it failed (a failed sync ends the run: the next needs its database).
    Exits with status 1 when a step failed."""
    if len(args.path or ()) != len(args.step):
        raise SystemExit("Give each --step the --path of its bundle.")
    failed = False
    with contextlib.chdir(args.data_dir.parent):
        for step, path in zip(args.step, args.path, strict=True):
            try:
                figures: dict[str, Any] | None = run_step(
                    step,
                    path,
                    args.data_dir,
                    database_url=args.database_url,
                    trace=args.tracemalloc,
                )
            except (Exception, SystemExit):
                traceback.print_exc()
                figures = None
            print(json.dumps(figures), flush=True)
            if figures is None:
                failed = True
                if step != "parse":
                    break
    if failed:
        sys.exit(1)


# --- The whole benchmark --------------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    students: int
    bundle: Bundle
    step: str
    figures: dict[str, Any] | None  # None when the step failed

    @property
    def counted_right(self) -> bool:
        if self.step == "anchor":
            return self.figures is not None
        return self.figures is not None and self.figures["active_students"] == (
            self.bundle.active_students
        )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(students: int, args: argparse.Namespace) -> list[StepResult]:
    """Write both bundles of this size, then run each step in a fresh process."""
    with contextlib.ExitStack() as stack:
        database_url = (
            stack.enter_context(fresh_database(args.postgres, prefix="licensing_bench_sync"))
            if args.postgres
            else ""
        )
        return measure_steps(students, args, database_url)


def measure_steps(students: int, args: argparse.Namespace, database_url: str) -> list[StepResult]:
    results = []
    with tempfile.TemporaryDirectory(prefix="oneroster-bench-") as temporary:
        folder = Path(temporary)
        log(f"{students:,} students: writing the bundles...")
        as_zip = args.bundle == "zip"
        bundles = {
            changed: write_bundle(
                folder / ("changed" if changed else "roster"),
                students=students,
                version=args.version,
                as_zip=as_zip,
                changed=changed,
            )
            for changed in (False, True)
        }
        steps = ["parse"] if args.parse_only else list(STEPS)
        for batch in step_batches(steps, quick=args.quick):
            batch_results = run_batch(batch, students, bundles, folder, args, database_url)
            results += batch_results
            if any(
                result.figures is None and result.step not in ("parse", "anchor")
                for result in batch_results
            ):
                break  # the later syncs need this one's database
    return results


def step_batches(steps: list[str], *, quick: bool) -> list[list[str]]:
    """The steps grouped by the process that runs them: each step in its own, so that its peak
    memory is its own; with ``--quick`` (figures not compared) the parse and the syncs share
    one, which saves an interpreter's start and the application's imports per step."""
    if not quick:
        return [[step] for step in steps]
    shared = [step for step in steps if step != "anchor"]
    return [batch for batch in (shared, [step for step in steps if step == "anchor"]) if batch]


def run_batch(
    batch: list[str],
    students: int,
    bundles: dict[bool, Bundle],
    folder: Path,
    args: argparse.Namespace,
    database_url: str,
) -> list[StepResult]:
    """Run the steps of ``batch`` in a fresh process: their results, in order, up to the step
    that failed (a sync that failed ends the batch)."""
    if batch == ["anchor"]:
        # The same number of rows as the bundle has records, on the same database kind.
        command = [
            sys.executable,
            str(Path(__file__).with_name("raw_anchor.py")),
            "bulk-load",
            "--rows",
            str(bundles[False].records),
            "--json",
        ]
        if args.postgres:
            command += ["--postgres", args.postgres]
    else:
        command = [sys.executable, __file__, "--data-dir", str(folder / "data")]
        for step in batch:
            command += ["--step", step, "--path", str(bundles[step == "resync-changed"].path)]
        if database_url:
            command += ["--database-url", database_url]
        if args.tracemalloc:
            command.append("--tracemalloc")
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    # One JSON line per step run: its figures, or null when it failed.
    printed: list[dict[str, Any] | None] = [
        json.loads(line) for line in done.stdout.splitlines() if line.strip()
    ]
    if done.returncode != 0 and all(figures is not None for figures in printed):
        # The process failed outside a step: the step it was in (or the last) failed.
        printed = printed[: len(batch) - 1] if len(printed) == len(batch) else printed
        printed.append(None)
    results = []
    for step, figures in zip(batch, printed, strict=False):
        if figures is not None and step == "anchor":
            figures["records"] = figures["rows"]
        bundle = bundles[step == "resync-changed"]
        result = StepResult(students, bundle, step, figures)
        if figures is None:
            log(f"  {STEPS[step]}: FAILED (exit status {done.returncode})")
        else:
            active = figures.get("active_students")
            log(
                f"  {STEPS[step]}: {figures['seconds']:.1f} s, "
                f"peak {figures['peak_mb']:,.0f} MB"
                + ("" if active is None else f", active {active:,}")
                + ("" if result.counted_right else f" (expected {bundle.active_students:,})")
            )
        results.append(result)
    return results


def section(results: list[StepResult], args: argparse.Namespace) -> str:
    """The result section, in markdown."""
    rows = []
    for result in results:
        bundle = f"{args.bundle}, {megabytes(result.bundle.megabytes)}"
        figures = result.figures
        if figures is None:
            rows.append([f"{result.students:,}", bundle, STEPS[result.step], "failed", "", "", ""])
            continue
        active = f"{figures['active_students']:,}" if "active_students" in figures else ""
        if not result.counted_right:
            active += f" (**expected {result.bundle.active_students:,}**)"
        rows.append(
            [
                f"{result.students:,}",
                bundle,
                STEPS[result.step],
                f"{figures['seconds']:.{1 if figures['seconds'] >= 10 else 2}f}",
                f"{figures['records'] / figures['seconds']:,.0f}",
                active,
                megabytes(figures["peak_mb"]),
            ]
        )
    table = markdown_table(
        ["students", "bundle", "step", "seconds", "records/s", "active students", "peak memory"],
        rows,
        numeric=[True, False, False, True, True, True, True],
    )
    measured = [(result.step, result.figures) for result in results if result.figures]
    parse_baseline = min(
        (figures["baseline_mb"] for step, figures in measured if step == "parse"), default=0
    )
    sync_baseline = min(
        (figures["baseline_mb"] for step, figures in measured if step not in ("parse", "anchor")),
        default=0,
    )
    database = database_name(args.postgres)
    parts = [
        f"### Full OneRoster CSV sync, {database}",
        f"A OneRoster {args.version} CSV bundle ({args.bundle}) of N students plus 5% staff and "
        f"1% guardians, synced through the service into a new {database} database, then synced "
        "again unchanged, then synced with 1% of the students changed: 0.25% removed from the "
        "file, 0.25% disabled (`enabledUser` false), 0.25% moved to another school and renamed, "
        "and 0.25% new. "
        + (
            "With `--quick` (a smoke run) the parse and the syncs share one process, so a "
            "step's peak memory includes the steps before it; "
            if args.quick
            else "Each step runs in a fresh process; "
        )
        + "peak memory is that process's peak "
        "resident set, of which the interpreter and the imports take about "
        f"{parse_baseline:,.0f} MB before a parse and {sync_baseline:,.0f} MB before a "
        "sync. "
        "Seconds are the step alone; records/s counts every user row (students, staff, "
        "guardians). The bulk-load anchor, in the same run: the driver alone "
        f"({'psycopg, `COPY`' if args.postgres else 'stdlib sqlite3, `executemany`'}) inserting "
        "as many roster-shaped rows into a new table with the roster table's indexes, in one "
        "transaction (`bench/raw_anchor.py bulk-load`).",
        table,
    ]
    heap = [figures["heap_peak_mb"] for _step, figures in measured if "heap_peak_mb" in figures]
    if heap:
        parts.append(f"Python heap peak during the parse (tracemalloc): {max(heap):,.1f} MB.")
    parts.append(verdict(results))
    return "\n\n".join(parts)


def megabytes(amount: float) -> str:
    return f"{amount:,.0f} MB" if amount >= 1 else f"{amount * 1000:,.0f} kB"


def verdict(results: list[StepResult]) -> str:
    target = (
        f"Target (SPEC section 8): a full sync of {TARGET_STUDENTS:,} students in at most "
        f"{TARGET_SECONDS} s with a peak under {TARGET_MB} MB, at >= {TARGET_ANCHOR_RATIO}x the "
        "bulk-load anchor's records per second"
    )
    if any(result.figures is None for result in results):
        return f"{target}: **a step failed**, see the table."
    if not all(result.counted_right for result in results):
        return f"{target}: **a step counted the wrong number of active students**."
    lines = []
    for students in sorted({result.students for result in results}):
        figures = {result.step: result.figures for result in results if result.students == students}
        sync, anchor = figures.get("sync"), figures.get("anchor")
        if sync and anchor:
            share = (sync["records"] / sync["seconds"]) / (anchor["records"] / anchor["seconds"])
            met = share >= TARGET_ANCHOR_RATIO
            lines.append(
                f"- {students:,} students: the full sync at {share:.2f}x the bulk-load anchor "
                f"({'met' if met else '**not met**'})."
            )
    full = [
        result.figures
        for result in results
        if result.step == "sync" and result.students == TARGET_STUDENTS and result.figures
    ]
    if not full:
        sizes = ", ".join(f"{size:,}" for size in sorted({result.students for result in results}))
        head = f"{target}: the {TARGET_STUDENTS:,}-student sync not measured by this run ({sizes} students)."
    else:
        seconds, peak = full[0]["seconds"], full[0]["peak_mb"]
        met = seconds <= TARGET_SECONDS and peak <= TARGET_MB
        head = (
            f"{target}: {TARGET_STUDENTS:,} students in {seconds:.1f} s with a {peak:,.0f} MB peak "
            f"({'met' if met else '**not met**'})."
        )
    return "\n".join([head, "", *lines]) if lines else head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--students",
        type=int,
        nargs="+",
        help=f"roster sizes (default {' and '.join(f'{size:,}' for size in SIZES)})",
    )
    parser.add_argument("--quick", action="store_true", help="a small roster, for a smoke run")
    parser.add_argument("--markdown", action="store_true", help="print the result as markdown")
    parser.add_argument("--version", choices=("1.1", "1.2"), default="1.1")
    parser.add_argument("--bundle", choices=("zip", "folder"), default="zip")
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also trace Python allocations during the parse (slower; shows the heap's peak)",
    )
    parser.add_argument("--parse-only", action="store_true", help="only parse; no sync")
    parser.add_argument(
        "--postgres",
        metavar="SERVER_URL",
        help="sync into PostgreSQL: a new database on this server (a role that may create one)",
    )
    # Steps in this process, as the benchmark runs them (each --step with the --path of its
    # bundle): one line of JSON per step on standard output, its figures or null.
    parser.add_argument("--step", action="append", choices=tuple(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--path", action="append", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()

    # The benchmark's own database and configuration only: no LICENSING_* variable (a
    # developer's database URL, say) reaches the steps, and each step runs in its temporary
    # folder, where there is no licensing.toml.
    for name in [name for name in os.environ if name.startswith("LICENSING_")]:
        del os.environ[name]
    if args.step:
        run_steps(args)
        return
    sizes = QUICK_SIZES if args.quick else args.students or SIZES
    results = [result for students in sizes for result in measure(students, args)]
    show(section(results, args), as_markdown=args.markdown)
    if any(not result.counted_right for result in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
