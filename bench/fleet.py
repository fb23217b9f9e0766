"""Benchmark: a fleet of districts syncing at night while others read their Licensing tab.

    .venv/bin/python bench/fleet.py --postgres postgresql+psycopg://USER:PW@HOST/postgres
    .venv/bin/python bench/fleet.py --postgres URL --districts 1000 --students 1000000
    .venv/bin/python bench/fleet.py --postgres URL --bundles-dir FOLDER   # keep the bundles
    .venv/bin/python bench/fleet.py --quick --markdown [--postgres URL]    # as bench/run.py calls it

PostgreSQL only (the fleet's deployment); on SQLite it prints a one-row section saying so.

It builds, in a new database on the server, ``--districts`` districts (10,000) holding
``--students`` students (10,000,000) in all, their sizes drawn by ``district_sizes`` (seeded: the
shape of US district enrolment, most districts small, a few very large). Each district gets a
signed license (its file where the ``license_file`` source reads it, then the product's
refresh), a VIEW_LICENSE token, and its current roster, bulk-loaded with ``COPY`` into the
product's ``roster_record`` table in the rows the product stores for it (checked against the
product's own parse and normalisation), then the product's recount. Its roster source is a
OneRoster CSV bundle folder: tonight's roster, the current one with 1% of its students changed
(``bench/oneroster_csv_sync.py``'s generator). The scheduler's jobs are stored as a running
fleet has them: license refreshes, alerts and usage snapshots spread over their intervals, the
roster syncs due tomorrow.

Then it serves the database with ``licensing serve --workers 4`` and starts 4 ``licensing
worker`` processes (the scheduler alone), all with the fleet's configuration file. The night:
every ROSTER_SYNC job is made due at once and the workers take them under their leases; the
script polls the ``scheduled_job`` rows until each has run again. Meanwhile wrk sends the
dashboard query from 32 connections, each request for a random district (any but the largest,
whose effect on the others is measured), in slices of a few seconds. The baseline: the same load
for as long, the workers still running, no sync due. It prints syncs per minute, the time for
the whole fleet, the dashboard's throughput and p99 in both phases, the largest district's sync
and the dashboard while it ran, and each process's peak resident memory; the targets (SPEC
section 8): the fleet in <= 30 minutes, the dashboard at >= 0.7x the baseline's throughput with
p99 <= 2x. It exits with status 1 when a sync failed or counted the wrong number of active
students, or a dashboard answer failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from bench.dashboard import (  # noqa: E402
    DASHBOARD_QUERY,
    WRK_COUNTING,
    Measurement,
    free_port,
    run_wrk,
    running_server,
)
from bench.oneroster_csv_sync import DISTRICT, Bundle, people, write_bundle  # noqa: E402
from bench.postgres import POSTGRES_WORKERS, fresh_database, libpq_conninfo  # noqa: E402
from bench.raw_anchor import COLUMNS  # noqa: E402
from bench.tables import markdown_table, show  # noqa: E402

SEED = 2026
DISTRICTS = 10_000
STUDENTS = 10_000_000
QUICK_DISTRICTS = 20
QUICK_STUDENTS = 20_000
SCHEDULER_WORKERS = 4
CONNECTIONS = 32
SLICE_SECONDS = 5
QUICK_SLICE_SECONDS = 1
QUICK_BASELINE_SLICES = 8
SOURCE = "sis"
# A license's seats over the district's active students: most districts have room, none is over.
HEADROOM_SHARE = 0.1
TARGET_MINUTES = 30
TARGET_THROUGHPUT_RATIO = 0.7
TARGET_P99_RATIO = 2.0
# The shape of the sizes (district_sizes): the largest district's share of all students, the
# share of districts on the heavy tail, and the spread of the log-normal body.
LARGEST_SHARE = 0.03
TAIL_SHARE = 0.002
TAIL_EXPONENT = 0.8
BODY_SIGMA = 1.3
MODIFIED = datetime(2026, 8, 15, 9, 30, tzinfo=UTC)  # as bench/oneroster_csv_sync.py writes it


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- The fleet's sizes ---------------------------------------------------------------------------


def district_sizes(districts: int, students: int, seed: int = SEED) -> list[int]:
    """``districts`` enrolments summing to ``students``, largest first, the same for a seed.

    It approximates NCES's US district enrolment (about 13,000 districts): strongly right-skewed,
    the median district a third of the mean, most districts small, and a handful of city
    districts holding about one student in eight, the largest alone a few percent. The body is
    log-normal (sigma ``BODY_SIGMA``); the top ``TAIL_SHARE`` of districts follow a Zipf tail
    from ``LARGEST_SHARE`` of all students down (a log-normal alone is too light at the top).
    Scaled to 10,000 districts and 10,000,000 students (a mean of 1,000): a median of about 400,
    nine districts in ten under 2,500, three over 100,000, the largest 300,000.
    """
    if districts < 1 or students < districts:
        raise SystemExit("Each district needs at least one student: --students >= --districts.")
    chooser = random.Random(seed)
    tail_count = max(1, math.floor(districts * TAIL_SHARE))
    tail = [LARGEST_SHARE * students * rank**-TAIL_EXPONENT for rank in range(1, tail_count + 1)]
    body = [chooser.lognormvariate(0, BODY_SIGMA) for _ in range(districts - tail_count)]
    scale = (students - sum(tail)) / sum(body) if body else 0
    sizes = sorted((max(1, round(size)) for size in tail + [b * scale for b in body]), reverse=True)
    sizes[0] += students - sum(sizes)  # rounding: the total is exact
    if sizes[0] < 1:
        raise SystemExit("Too few students for this many districts.")
    return sorted(sizes, reverse=True)


def slug_of(number: int) -> str:
    return f"district-{number:05d}"


# --- The current roster, as the product stores it -----------------------------------------------

ROLES = {"student": "student", "teacher": "staff", "administrator": "staff", "aide": "staff"}
LIFECYCLES = {"": "active", "active": "active", "tobedeleted": "deleted"}


def current_rows(district_id: int, students: int) -> Iterator[tuple[Any, ...]]:
    """The district's current roster (``people`` unchanged) as the rows the product stores for
    it, in ``COLUMNS`` order; ``check_same_rows`` holds this to the product's own parse."""
    staff, guardians = max(1, students // 20), students // 100
    for person in people(students, staff, guardians):
        role = ROLES.get(person["role"])
        if role is None:
            continue  # guardians are not stored
        orgs = person["orgs"]
        source_id = person["sourcedId"]
        yield (
            district_id,
            SOURCE,
            source_id,
            person.get("identifier") or source_id,
            role,
            LIFECYCLES[person["status"]],
            person["enabledUser"] == "true",
            person["status"],
            person["givenName"],
            person["familyName"],
            person["username"],
            person.get("grades"),
            orgs.split(",")[0],
            orgs,
            None,
            None,
            MODIFIED,
        )


def expected_active(students: int, *, changed: bool) -> int:
    """Active students of ``people``: what the product must count."""
    return sum(
        person["role"] == "student"
        and person["status"] != "tobedeleted"
        and person["enabledUser"] == "true"
        for person in people(students, 0, 0, changed=changed)
    )


def active_ids(students: int, *, changed: bool) -> set[str]:
    """The ids of ``people``'s active students: those the product counts."""
    return {
        person["sourcedId"]
        for person in people(students, 0, 0, changed=changed)
        if person["role"] == "student"
        and person["status"] != "tobedeleted"
        and person["enabledUser"] == "true"
    }


def expected_held(students: int) -> bool:
    """Whether the product's drop guard must hold tonight's sync for an administrator: in a
    district of a handful of students the 1% change stops counting one or two of them, more than
    the guard's share (``max_drop_share``, 20% by default)."""
    from licensing.storage.roster_changes import DEFAULT_MAX_DROP_SHARE

    before = active_ids(students, changed=False)
    stopped = before - active_ids(students, changed=True)
    return bool(before) and len(stopped) / len(before) > DEFAULT_MAX_DROP_SHARE


def check_same_rows(folder: Path) -> None:
    """``current_rows`` must be what the product stores from the same roster read through its
    ``oneroster_csv`` source, or the night's sync would do different work than a real one."""
    from licensing.orchestration.plugin_host import plugin_host
    from licensing.settings import Settings
    from licensing.storage.roster import normalize
    from plugins.builtin.oneroster_csv import OneRosterCsvSource

    students = 2_000
    bundle = write_bundle(folder / "check", students=students, version="1.1", as_zip=False)
    source = OneRosterCsvSource(plugin_host(Settings()))
    records = source.fetch_students(district=DISTRICT, options={"path": str(bundle.path)})
    product = [
        row
        for position, record in enumerate(records, start=1)
        if (row := normalize(record, position=position)) is not None
    ]
    ours = [dict(zip(COLUMNS, row, strict=True)) for row in current_rows(1, students)]
    for row in ours:
        del row["district_id"], row["source"]
    if ours != product:
        first = next(
            (pair for pair in zip(ours, product, strict=False) if pair[0] != pair[1]), None
        )
        raise SystemExit(
            "bench/fleet.py's current roster no longer matches what the product stores from "
            f"the same bundle ({len(ours)} rows against {len(product)}); first difference: {first}"
        )
    shutil.rmtree(folder / "check")


# --- Tonight's bundles -----------------------------------------------------------------------------


def write_bundles(folder: Path, sizes: list[int], seed: int) -> dict[str, Bundle]:
    """Tonight's OneRoster CSV bundle of each district (its roster, 1% changed), by slug; a
    folder written earlier for the same sizes and seed is used again as it is."""
    stamp = folder / "fleet-bundles.json"
    wanted = {"seed": seed, "sizes_sha256": hashlib.sha256(json.dumps(sizes).encode()).hexdigest()}
    bundles: dict[str, Bundle] = {}
    if stamp.is_file():
        written = json.loads(stamp.read_text(encoding="utf-8"))
        if written.get("key") == wanted:
            log(f"Bundles: using the {len(sizes):,} written earlier")
            for slug, (records, active) in written["bundles"].items():
                path = folder / slug / "bundle"
                bundles[slug] = Bundle(path, 0, records, active)
            return bundles
        log("Bundles: the folder holds other sizes or another seed; writing them again")
        for child in folder.iterdir():
            if child.is_dir() and child.name.startswith("district-"):
                shutil.rmtree(child)
        stamp.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for number, students in enumerate(sizes, start=1):
        slug = slug_of(number)
        bundles[slug] = write_bundle(
            folder / slug, students=students, version="1.1", as_zip=False, changed=True
        )
        if number % 500 == 0:
            log(f"Bundles: {number:,} of {len(sizes):,} written")
    stamp.write_text(
        json.dumps(
            {
                "key": wanted,
                "bundles": {
                    slug: [bundle.records, bundle.active_students]
                    for slug, bundle in bundles.items()
                },
            }
        ),
        encoding="utf-8",
    )
    log(f"Bundles: {len(sizes):,} written in {time.perf_counter() - started:,.0f} s")
    return bundles


def write_configuration(path: Path, bundles: dict[str, Bundle]) -> None:
    """The fleet's licensing.toml: each district's roster source, a OneRoster CSV folder."""
    lines = []
    for slug, bundle in bundles.items():
        lines += [
            f"[districts.{slug}.roster_sources.{SOURCE}]",
            'kind = "oneroster_csv"',
            f"options = {{ path = {json.dumps(str(bundle.path))} }}",
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")


# --- Building the database ---------------------------------------------------------------------


@dataclass
class Fleet:
    ids: dict[str, int]  # by slug
    sizes: dict[str, int]  # students, by slug
    tokens: dict[str, str]  # a VIEW_LICENSE token's secret, by slug
    active_tonight: dict[str, int]  # active students after tonight's sync, by slug
    held_tonight: set[str] = field(default_factory=set)  # syncs the drop guard must hold
    active_now: dict[str, int] = field(default_factory=dict)  # in the current roster
    build_seconds: dict[str, float] = field(default_factory=dict)


def build_fleet(
    data_dir: Path,
    database_url: str,
    configuration: Path,
    bundles: dict[str, Bundle],
    sizes: list[int],
) -> Fleet:
    """Districts, licenses, tokens, current rosters and scheduled jobs, loaded in bulk."""
    import psycopg
    from sqlalchemy import insert
    from sqlmodel import select

    from app.demo import issue_license_file
    from app.runtime import build_service
    from db.models import District, ScheduledJob
    from licensing.domain.states import ScheduledJobKind
    from licensing.orchestration.scheduled_jobs import ServiceJobs
    from licensing.settings import load_settings
    from licensing.storage import signing
    from licensing.storage.districts import create_district
    from licensing.storage.roster import refresh_usage
    from licensing.storage.tokens import Permission, create_token

    os.environ["LICENSING_CONFIG"] = str(configuration)
    settings = load_settings(data_dir=data_dir, database_url=database_url, scheduler_enabled=False)
    service = build_service(settings, upgrade_schema=True)
    now = service.clock()
    slugs = list(bundles)
    fleet = Fleet(
        ids={},
        sizes=dict(zip(slugs, sizes, strict=True)),
        tokens={},
        active_tonight={slug: bundle.active_students for slug, bundle in bundles.items()},
        held_tonight={slug for slug, size in zip(slugs, sizes, strict=True) if expected_held(size)},
    )
    for slug in fleet.held_tonight:  # a held sync leaves the count as it was
        fleet.active_tonight[slug] = expected_active(fleet.sizes[slug], changed=False)

    started = time.perf_counter()
    with service.database.write() as session:
        for slug in slugs:
            district = create_district(
                session,
                slug=slug,
                official_name=f"{slug.title()} Schools",
                time_zone="UTC",
                now=now,
            )
            fleet.ids[slug] = int(district.id or 0)
        for slug in slugs:
            district = session.get(District, fleet.ids[slug])
            assert district is not None
            _token, fleet.tokens[slug] = create_token(
                session,
                district=district,
                name="fleet dashboard",
                permissions={Permission.VIEW_LICENSE},
                now=now,
            )
    fleet.build_seconds["districts and tokens"] = time.perf_counter() - started
    log(
        f"Build: {len(slugs):,} districts and tokens in {fleet.build_seconds['districts and tokens']:.0f} s"
    )

    started = time.perf_counter()
    rows = 0
    with psycopg.connect(libpq_conninfo(database_url)) as connection:
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY roster_record ({', '.join(COLUMNS)}) FROM STDIN") as copy,
        ):
            for slug in slugs:
                for row in current_rows(fleet.ids[slug], fleet.sizes[slug]):
                    copy.write_row(row)
                    rows += 1
        connection.commit()
        connection.execute("ANALYZE roster_record")
        connection.commit()
    fleet.build_seconds["rosters (COPY)"] = time.perf_counter() - started
    log(f"Build: {rows:,} roster rows copied in {fleet.build_seconds['rosters (COPY)']:.0f} s")

    started = time.perf_counter()
    wrong = []
    with service.database.write() as session:
        for slug in slugs:
            counts = refresh_usage(session, district_id=fleet.ids[slug], now=now)
            fleet.active_now[slug] = expected_active(fleet.sizes[slug], changed=False)
            if counts.active_students != fleet.active_now[slug]:
                wrong.append(slug)
    if wrong:
        raise SystemExit(f"The recount counted the wrong active students in {', '.join(wrong[:5])}")
    fleet.build_seconds["recount"] = time.perf_counter() - started
    log(f"Build: recounted in {fleet.build_seconds['recount']:.0f} s")

    started = time.perf_counter()
    private_key = signing.generate_signing_key(
        data_dir / "fleet-signing-key.pem", settings.trusted_keys_dir / "fleet.pub"
    )
    expires_on = now.date() + timedelta(days=300)

    async def refresh_all() -> None:
        for slug in slugs:
            active = fleet.active_now[slug]
            issue_license_file(
                settings,
                private_key=private_key,
                district_slug=slug,
                key_id="fleet",
                terms=signing.LicenseTerms(
                    license_id=f"M1T1-{slug.upper()}",
                    district=slug,
                    licensed_to=f"{slug.title()} Schools",
                    legal_entity_name=None,
                    total=math.ceil(active * (1 + HEADROOM_SHARE)) + 10,
                    created_on=date(2025, 7, 1),
                    expires_on=expires_on,
                    deactivated=False,
                    overage_allowance=0.05,
                    issued_at=now,
                ),
            )
            outcome = await service.license_updater.refresh(
                district_id=fleet.ids[slug], actor="bench"
            )
            if outcome.problem is not None:
                raise SystemExit(f"The fleet's license was refused: {outcome.problem.message}")

    asyncio.run(refresh_all())
    fleet.build_seconds["licenses"] = time.perf_counter() - started
    log(f"Build: licenses in {fleet.build_seconds['licenses']:.0f} s")

    # The jobs as a fleet that has been running has them: each at its place in its interval
    # (spread), the roster syncs due at their next night (made due when the night starts).
    started = time.perf_counter()
    spreader = random.Random(SEED)
    jobs = []
    for spec in ServiceJobs(service).job_specs():
        if spec.district_id is None:
            continue  # the service's own jobs: the workers add them
        if spec.schedule is not None:
            next_run = spec.schedule.next_run(now)
            if spec.kind == ScheduledJobKind.LICENSE_REFRESH:  # four a day: spread over 6 h
                next_run = now + timedelta(seconds=spreader.uniform(60, 6 * 3600))
        else:
            next_run = now + timedelta(seconds=spreader.uniform(0, spec.every.total_seconds()))
        jobs.append(
            {
                "name": spec.name,
                "kind": spec.kind.value,
                "district_id": spec.district_id,
                "next_run_at": next_run,
                "last_finished_at": now,
                "last_outcome": "ok",
                "consecutive_failures": 0,
                "interval_seconds": spec.stored_interval,
                "schedule": spec.stored_schedule,
            }
        )
    with service.database.write() as session:
        for start in range(0, len(jobs), 5_000):
            session.execute(insert(ScheduledJob), jobs[start : start + 5_000])
        synced = session.exec(
            select(ScheduledJob.name).where(ScheduledJob.kind == ScheduledJobKind.ROSTER_SYNC.value)
        ).all()
    if len(synced) != len(slugs):
        raise SystemExit(f"Expected {len(slugs):,} roster sync jobs, stored {len(synced):,}")
    fleet.build_seconds["scheduled jobs"] = time.perf_counter() - started
    service.database.dispose()
    del os.environ["LICENSING_CONFIG"]
    return fleet


# --- The night --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slice:
    started: datetime
    ended: datetime
    measured: Measurement


@dataclass
class Night:
    due_at: datetime
    finished_at: datetime | None = None
    slices: list[Slice] = field(default_factory=list)
    baseline: list[Slice] = field(default_factory=list)
    syncs: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)  # by slug
    sync_outcomes: Counter[str] = field(default_factory=Counter)
    job_outcomes: Counter[str] = field(default_factory=Counter)  # other jobs run in the night
    wrong_counts: list[str] = field(default_factory=list)
    wrong_outcomes: list[str] = field(default_factory=list)  # not applied, or not held as due
    peak_mb: dict[str, list[float]] = field(default_factory=dict)

    @property
    def minutes(self) -> float:
        end = self.finished_at or (self.slices[-1].ended if self.slices else self.due_at)
        return (end - self.due_at).total_seconds() / 60


def wrk_script(path: Path, tokens: list[str]) -> Path:
    """A wrk script sending the dashboard query as a random district of ``tokens``."""
    body = json.dumps({"query": DASHBOARD_QUERY})
    listed = ",\n".join(json.dumps(token) for token in tokens)
    path.write_text(
        f"""
local tokens = {{
{listed}
}}
local body = [==[{body}]==]
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
math.randomseed({SEED})

function request()
  wrk.headers["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]
  return wrk.format(nil, nil, nil, body)
end
"""
        + WRK_COUNTING.format(status=200),
        encoding="utf-8",
    )
    return path


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def descendants_of(pid: int) -> list[int]:
    """Every process under ``pid``: the server's workers are the children of its fork server."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii")
        except OSError:
            continue
        # The command may hold spaces and parentheses: the parent is after the last ")".
        parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found: list[int] = []
    wanted = {pid}
    while wanted:
        wanted = {child for child, parent in parents.items() if parent in wanted}
        found += sorted(wanted)
    return found


def wait_for_first_tick(
    service: Any, workers: list[subprocess.Popen[bytes]], *, deadline: float
) -> None:
    """Until a worker has run the service's every-tick job: the workers are up (their start,
    imports and the fleet's configuration, is not the night's)."""
    from sqlmodel import select

    from db.models import ScheduledJob
    from licensing.domain.states import ScheduledJobKind

    while time.monotonic() < deadline:
        if any(worker.poll() is not None for worker in workers):
            raise SystemExit("A licensing worker exited at its start; see its log.")
        with service.database.read() as session:
            ticked = session.exec(
                select(ScheduledJob.last_finished_at).where(
                    ScheduledJob.kind == ScheduledJobKind.NOTIFICATIONS.value
                )
            ).first()
        if ticked is not None:
            return
        time.sleep(0.5)
    raise SystemExit("The licensing workers did not tick within 300 s.")


def utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@contextlib.contextmanager
def scheduler_workers(
    count: int, environment: dict[str, str], data_dir: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` ``licensing worker`` processes, stopped when the block ends."""
    licensing = str(Path(sys.executable).with_name("licensing"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for number in range(count):
            with (data_dir / f"worker-{number}.log").open("w") as output:
                processes.append(
                    subprocess.Popen(
                        [licensing, "worker"],
                        cwd=data_dir,
                        env=environment,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                    )
                )
        yield processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_night(
    fleet: Fleet,
    data_dir: Path,
    database_url: str,
    configuration: Path,
    arguments: argparse.Namespace,
) -> Night:
    from sqlalchemy import func, update
    from sqlmodel import select

    from app.runtime import build_service
    from db.models import DistrictUsage, RosterSyncRun, ScheduledJob
    from licensing.domain.states import ScheduledJobKind
    from licensing.settings import load_settings

    os.environ["LICENSING_CONFIG"] = str(configuration)
    service = build_service(
        load_settings(data_dir=data_dir, database_url=database_url, scheduler_enabled=False)
    )
    del os.environ["LICENSING_CONFIG"]
    sync_kind = ScheduledJobKind.ROSTER_SYNC.value
    largest = max(fleet.sizes, key=lambda slug: fleet.sizes[slug])
    others = [fleet.tokens[slug] for slug in fleet.tokens if slug != largest] or [
        fleet.tokens[largest]
    ]
    script = wrk_script(data_dir / "fleet.lua", others)
    port = free_port()
    url = f"http://127.0.0.1:{port}/graphql"
    licensing = str(Path(sys.executable).with_name("licensing"))
    configured = {"LICENSING_CONFIG": str(configuration), "LICENSING_LOG_LEVEL": "WARNING"}
    worker_environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith("LICENSING_")},
        **configured,
        "LICENSING_DATA_DIR": str(data_dir),
        "LICENSING_DATABASE_URL": database_url,
        "LICENSING_SCHEDULER_ENABLED": "false",
        "LICENSING_WORKER_NICENESS": str(arguments.worker_niceness),
        "PYTHONPATH": str(REPOSITORY),
    }
    serve = [licensing, "serve", "--port", str(port), "--workers", str(POSTGRES_WORKERS)]
    seconds = arguments.slice_seconds
    load = {"connections": arguments.connections, "seconds": seconds}

    def finished_syncs(since: datetime) -> int:
        with service.database.read() as session:
            return int(
                session.exec(
                    select(func.count()).where(
                        ScheduledJob.kind == sync_kind, ScheduledJob.last_finished_at >= since
                    )
                ).one()
            )

    def one_slice() -> Slice:
        started = datetime.now(UTC)
        measured = run_wrk(url, script, **load)
        return Slice(started, datetime.now(UTC), measured)

    with (
        running_server(
            serve,
            data_dir,
            f"http://127.0.0.1:{port}/healthz",
            database_url=database_url,
            environment=configured,
        ) as server,
        scheduler_workers(arguments.scheduler_workers, worker_environment, data_dir) as workers,
    ):
        log("Night: waiting for the scheduler workers' first tick")
        wait_for_first_tick(service, workers, deadline=time.monotonic() + 300)
        log("Night: warming up the server")
        run_wrk(url, script, connections=arguments.connections, seconds=min(2, seconds))
        due_at = service.clock()
        with service.database.write() as session:
            session.execute(
                update(ScheduledJob)
                .where(ScheduledJob.kind == sync_kind)
                .values(next_run_at=due_at)
            )
        night = Night(due_at=due_at)
        deadline = time.monotonic() + arguments.max_minutes * 60
        log(f"Night: {len(fleet.ids):,} roster syncs due")
        while True:
            night.slices.append(one_slice())
            done = finished_syncs(due_at)
            log(
                f"Night: {done:,} of {len(fleet.ids):,} syncs done after "
                f"{(datetime.now(UTC) - due_at).total_seconds():,.0f} s; dashboard "
                f"{night.slices[-1].measured.requests_per_second:,.0f} requests/s, "
                f"p99 {night.slices[-1].measured.p99_ms:,.0f} ms"
            )
            if done >= len(fleet.ids):
                break
            if time.monotonic() > deadline:
                log(f"Night: stopped after {arguments.max_minutes} minutes, {done:,} syncs done")
                break
        with service.database.read() as session:
            rows = session.exec(
                select(ScheduledJob).where(ScheduledJob.last_finished_at >= due_at)
            ).all()
            by_id = {district_id: slug for slug, district_id in fleet.ids.items()}
            for job in rows:
                if job.kind == sync_kind:
                    started, ended = utc(job.last_started_at), utc(job.last_finished_at)
                    if started and ended and started >= due_at:
                        night.syncs[by_id[job.district_id or 0]] = (started, ended)
                else:
                    night.job_outcomes[job.kind] += 1
        if len(night.syncs) >= len(fleet.ids):
            night.finished_at = max(ended for _started, ended in night.syncs.values())
        night_seconds = sum((piece.ended - piece.started).total_seconds() for piece in night.slices)
        slices = max(1, round(night_seconds / seconds))
        if arguments.baseline_slices:
            slices = min(slices, arguments.baseline_slices)
        log(f"Baseline: {slices} slices of {seconds} s, no sync due")
        for _ in range(slices):
            night.baseline.append(one_slice())
        processes = {
            "licensing worker (scheduler)": [worker.pid for worker in workers],
            "licensing serve, its processes": descendants_of(server.pid),
            "licensing serve (supervisor)": [server.pid],
        }
        for name, pids in processes.items():
            night.peak_mb[name] = [peak for pid in pids if (peak := peak_rss_mb(pid)) is not None]

    with service.database.read() as session:
        runs = session.exec(
            select(RosterSyncRun.status, func.count())
            .where(RosterSyncRun.started_at >= due_at)
            .group_by(RosterSyncRun.status)
        ).all()
        night.sync_outcomes.update({status: count for status, count in runs})
        outcomes = dict(
            session.exec(
                select(RosterSyncRun.district_id, RosterSyncRun.status).where(
                    RosterSyncRun.started_at >= due_at
                )
            ).all()
        )
        usage = {
            row.district_id: row.active_students
            for row in session.exec(select(DistrictUsage)).all()
        }
    for slug, district_id in fleet.ids.items():
        if slug in night.syncs and usage.get(district_id) != fleet.active_tonight[slug]:
            night.wrong_counts.append(slug)
        due = "held" if slug in fleet.held_tonight else "applied"
        if slug in night.syncs and outcomes.get(district_id) != due:
            night.wrong_outcomes.append(slug)
    service.database.dispose()
    return night


# --- The report --------------------------------------------------------------------------------


def combined(slices: list[Slice]) -> Measurement | None:
    """The slices as one measurement: all answers over all time; p50 and p99 the median of the
    slices' (wrk gives percentiles per run, not its samples)."""
    if not slices:
        return None
    seconds = sum((piece.ended - piece.started).total_seconds() for piece in slices)
    requests = sum(piece.measured.requests for piece in slices)
    return Measurement(
        requests_per_second=requests / seconds if seconds else float("nan"),
        p50_ms=statistics.median(piece.measured.p50_ms for piece in slices),
        p99_ms=statistics.median(piece.measured.p99_ms for piece in slices),
        requests=requests,
        failures=sum(piece.measured.failures for piece in slices),
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def report(fleet: Fleet, night: Night, arguments: argparse.Namespace) -> str:
    sizes = sorted(fleet.sizes.values())
    students = sum(sizes)
    largest = max(fleet.sizes, key=lambda slug: fleet.sizes[slug])
    baseline, during = combined(night.baseline), combined(night.slices)
    syncs = len(night.syncs)
    durations = sorted((ended - started).total_seconds() for started, ended in night.syncs.values())
    lines = [
        "### Fleet: nightly syncs while other districts read their tab, PostgreSQL",
        "",
        f"`.venv/bin/python bench/fleet.py --postgres URL --districts {len(sizes)} --students "
        f"{students}`: {len(sizes):,} districts, {students:,} students (sizes seeded "
        f"{arguments.seed}: median {statistics.median(sizes):,.0f}, "
        f"{sum(size < 2_500 for size in sizes) / len(sizes):.0%} under 2,500, "
        f"{sum(size > 100_000 for size in sizes)} over 100,000, the largest "
        f"{sizes[-1]:,}), bulk-loaded. The night: every district's roster sync (a OneRoster CSV "
        "folder, 1% of its students changed) made due at once, run by "
        f"{arguments.scheduler_workers} `licensing worker` processes (at niceness "
        f"{arguments.worker_niceness}, `worker_niceness`) under their leases; "
        f"meanwhile wrk sends the dashboard query from {arguments.connections} connections to "
        f"`licensing serve --workers {POSTGRES_WORKERS}`, each request as a random district "
        f"other than the largest, in {arguments.slice_seconds} s slices (p50 and p99: the "
        "median of the slices'). Baseline: the same load for as long, the workers running, no "
        "sync due.",
        "",
        markdown_table(
            ["build step", "seconds"],
            [[step, f"{seconds:,.1f}"] for step, seconds in fleet.build_seconds.items()],
            numeric=[False, True],
        ),
        "",
    ]
    fleet_minutes = night.minutes
    night_rows = [
        ["syncs run", f"{syncs:,} of {len(sizes):,}"],
        [
            "outcomes",
            ", ".join(f"{n:,} {status}" for status, n in night.sync_outcomes.most_common()),
        ],
        ["time for the whole fleet", f"{fleet_minutes:,.1f} min"],
        ["syncs per minute", f"{syncs / fleet_minutes:,.1f}" if fleet_minutes else "n/a"],
        [
            "one sync: median, p99, longest",
            f"{statistics.median(durations):,.2f} s, "
            f"{durations[min(len(durations) - 1, int(len(durations) * 0.99))]:,.1f} s, "
            f"{durations[-1]:,.1f} s"
            if durations
            else "n/a",
        ],
        [
            "other jobs the workers ran meanwhile",
            ", ".join(f"{n:,} {kind}" for kind, n in night.job_outcomes.most_common()) or "none",
        ],
    ]
    lines += [markdown_table(["the night", ""], night_rows, numeric=[False, True]), ""]

    dashboard_rows = []
    for name, measured in (("baseline, no sync", baseline), ("during the night", during)):
        if measured is None:
            continue
        dashboard_rows.append(
            [
                name,
                f"{measured.requests_per_second:,.0f}",
                f"{measured.p50_ms:,.1f}",
                f"{measured.p99_ms:,.1f}",
                f"{measured.requests:,}",
                str(measured.failures),
            ]
        )
    largest_window = night.syncs.get(largest)
    overlapping = []
    if largest_window:
        overlapping = [
            piece
            for piece in night.slices
            if piece.started < largest_window[1] and piece.ended > largest_window[0]
        ]
        while_largest = combined(overlapping)
        if while_largest is not None:
            worst = max(piece.measured.p99_ms for piece in overlapping)
            dashboard_rows.append(
                [
                    f"while the largest district ({fleet.sizes[largest]:,}) synced",
                    f"{while_largest.requests_per_second:,.0f}",
                    f"{while_largest.p50_ms:,.1f}",
                    f"{while_largest.p99_ms:,.1f} (worst slice {worst:,.0f})",
                    f"{while_largest.requests:,}",
                    str(while_largest.failures),
                ]
            )
    lines += [
        markdown_table(
            ["dashboard", "requests/s", "p50 ms", "p99 ms", "answers", "failures"],
            dashboard_rows,
            numeric=[False, True, True, True, True, True],
        ),
        "",
        markdown_table(
            ["process", "count", "peak memory, each (max)"],
            [
                [name, str(len(peaks)), f"{max(peaks):,.0f} MB" if peaks else "n/a"]
                for name, peaks in night.peak_mb.items()
            ],
            numeric=[False, True, True],
        ),
        "",
    ]
    if largest_window:
        seconds = (largest_window[1] - largest_window[0]).total_seconds()
        lines.append(
            f"The largest district ({fleet.sizes[largest]:,} students) synced in {seconds:,.1f} s, "
            f"starting {(largest_window[0] - night.due_at).total_seconds():,.0f} s into the night."
        )
        lines.append("")
    throughput = p99 = float("nan")
    if baseline and during and baseline.requests_per_second and baseline.p99_ms:
        throughput = during.requests_per_second / baseline.requests_per_second
        p99 = during.p99_ms / baseline.p99_ms
    all_ran = night.finished_at is not None
    full_size = len(sizes) >= DISTRICTS and students >= STUDENTS
    size_note = "" if full_size else f" (this run: {len(sizes):,} districts, {students:,} students)"
    lines.append(
        f"Target (SPEC section 8) at {DISTRICTS:,} districts / {STUDENTS:,} students{size_note}: "
        f"the whole fleet in <= {TARGET_MINUTES} min: {fleet_minutes:,.1f} min"
        + ("" if all_ran else " and not finished")
        + f" ({verdict(all_ran and fleet_minutes <= TARGET_MINUTES)}"
        + ("" if full_size else ", at this size")
        + f"); dashboard throughput >= {TARGET_THROUGHPUT_RATIO}x the baseline: "
        f"{throughput:.2f}x ({verdict(throughput >= TARGET_THROUGHPUT_RATIO)}); p99 <= "
        f"{TARGET_P99_RATIO:g}x the baseline: {p99:.2f}x ({verdict(p99 <= TARGET_P99_RATIO)})."
    )
    if fleet.held_tonight:
        lines.append(
            f"\n{len(fleet.held_tonight)} sync(s) held for an administrator, as the drop guard "
            "requires: in a district of a few students the 1% change stops counting more than "
            f"20% of them ({', '.join(sorted(fleet.held_tonight)[:5])})."
        )
    if night.wrong_outcomes:
        lines.append(
            f"\n**{len(night.wrong_outcomes)} sync(s) neither applied nor held as due**: "
            f"{', '.join(night.wrong_outcomes[:5])}."
        )
    if night.wrong_counts:
        lines.append(
            f"\n**{len(night.wrong_counts)} district(s) counted the wrong active students after "
            f"their sync**: {', '.join(night.wrong_counts[:5])}."
        )
    return "\n".join(lines) + "\n"


def sqlite_section() -> str:
    return (
        "\n".join(
            [
                "### Fleet: nightly syncs while other districts read their tab",
                "",
                "The fleet benchmark measures a PostgreSQL deployment (several workers taking "
                "leases); it runs only with `--postgres`.",
                "",
                markdown_table(
                    ["database", "result"],
                    [["SQLite", "not measured (PostgreSQL only)"]],
                    numeric=[False, False],
                ),
            ]
        )
        + "\n"
    )


# --- Main ------------------------------------------------------------------------------------


def main() -> None:
    from licensing.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--districts", type=int, help=f"districts (default {DISTRICTS:,})")
    parser.add_argument("--students", type=int, help=f"students in all (default {STUDENTS:,})")
    parser.add_argument("--seed", type=int, default=SEED, help="seeds the district sizes")
    parser.add_argument(
        "--postgres",
        metavar="SERVER_URL",
        help="the PostgreSQL server: a new database on it (a role that may create one)",
    )
    parser.add_argument(
        "--bundles-dir",
        type=Path,
        help="write the bundles here and keep them; a later run with the same sizes and seed "
        "uses them again (default: a temporary folder, removed at the end)",
    )
    parser.add_argument("--scheduler-workers", type=int, default=SCHEDULER_WORKERS)
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    parser.add_argument(
        "--worker-niceness",
        type=int,
        default=Settings.model_fields["worker_niceness"].default,
        help="the scheduler workers' worker_niceness (default: the setting's own)",
    )
    parser.add_argument("--slice-seconds", type=int, help="seconds of each wrk run")
    parser.add_argument(
        "--baseline-slices",
        type=int,
        help="at most this many baseline slices (default: as long as the night)",
    )
    parser.add_argument(
        "--max-minutes", type=float, default=90, help="stop the night after this long"
    )
    parser.add_argument("--quick", action="store_true", help="a small fleet, for a smoke run")
    parser.add_argument("--markdown", action="store_true", help="print the result as markdown")
    arguments = parser.parse_args()
    if not arguments.postgres:
        show(sqlite_section(), as_markdown=arguments.markdown)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed for the load: install Debian's package 'wrk'.")
    arguments.districts = arguments.districts or (QUICK_DISTRICTS if arguments.quick else DISTRICTS)
    arguments.students = arguments.students or (QUICK_STUDENTS if arguments.quick else STUDENTS)
    arguments.slice_seconds = arguments.slice_seconds or (
        QUICK_SLICE_SECONDS if arguments.quick else SLICE_SECONDS
    )
    if arguments.quick:
        arguments.max_minutes = min(arguments.max_minutes, 5)
        arguments.baseline_slices = arguments.baseline_slices or QUICK_BASELINE_SLICES
    # The benchmark's own configuration only: no LICENSING_* variable of the developer's.
    for name in [name for name in os.environ if name.startswith("LICENSING_")]:
        del os.environ[name]
    sizes = district_sizes(arguments.districts, arguments.students, arguments.seed)
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="licensing-fleet-")))
        data_dir = folder / "data"
        data_dir.mkdir()
        check_same_rows(folder)
        bundles_dir = arguments.bundles_dir or folder / "bundles"
        started = time.perf_counter()
        bundles = write_bundles(bundles_dir, sizes, arguments.seed)
        bundle_seconds = time.perf_counter() - started
        configuration = data_dir / "licensing.toml"
        write_configuration(configuration, bundles)
        database_url = stack.enter_context(
            fresh_database(arguments.postgres, prefix="licensing_fleet")
        )
        fleet = build_fleet(data_dir, database_url, configuration, bundles, sizes)
        fleet.build_seconds = {"bundles (written or reused)": bundle_seconds, **fleet.build_seconds}
        night = run_night(fleet, data_dir, database_url, configuration, arguments)
    show(report(fleet, night, arguments), as_markdown=arguments.markdown)
    failures = sum(piece.measured.failures for piece in night.slices + night.baseline)
    failed_syncs = len(night.wrong_outcomes)
    if failures or failed_syncs or night.wrong_counts or night.finished_at is None:
        log(
            f"{failures} dashboard request(s) failed, {failed_syncs} sync(s) neither applied nor "
            "held as due, "
            f"{len(night.wrong_counts)} wrong count(s), "
            f"{'all' if night.finished_at else 'not all'} syncs ran"
        )
        raise SystemExit(1)


if __name__ == "__main__":
    main()
