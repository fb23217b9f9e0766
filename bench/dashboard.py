"""Benchmark: the dashboard query through the real server against a hand-written endpoint and
the raw anchor.

    .venv/bin/python bench/dashboard.py [--students 1000 1000000] [--workers 1] [--markdown]
    .venv/bin/python bench/dashboard.py --postgres postgresql+psycopg://USER:PASSWORD@HOST/postgres

For each district size it builds a database with one district (a signed license, a roster of N
active students plus staff and graduates, a LICENSES_LOW alert and an API token): a SQLite file,
or with ``--postgres SERVER_URL`` a new database on that server (dropped at the end). It serves
it three times from the same database with the same uvicorn settings (1 worker on SQLite, 4 on
PostgreSQL): ``licensing serve`` (the product: GraphQL at /graphql), ``bench/bare_dashboard.py``
(a hand-written Starlette JSON endpoint serving the same numbers through SQLAlchemy) and
``bench/raw_anchor.py`` (Starlette and the driver alone, one statement). A separate process, wrk
(Debian's package ``wrk``), sends the load: 32 connections for a fixed time, alternating between
the three servers for several rounds. A response that is not HTTP 200, or that carries GraphQL
``errors``, counts as a failure.

It prints requests per second, p50 and p99 latency of each and the ratios against SPEC section 8
(the product >= 1.0x the hand-written endpoint's throughput with p99 <= 1.5x its p99, >= 0.5x the
raw anchor's throughput, and its throughput at 1,000,000 students >= 0.8x that at 1,000), and
with ``--markdown`` the same as a markdown section on standard output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from sqlmodel import select  # noqa: E402

from app.demo import issue_license_file  # noqa: E402
from app.runtime import build_service  # noqa: E402
from bench.postgres import database_name, default_workers, fresh_database  # noqa: E402
from bench.report_export import roster_rows  # noqa: E402
from bench.tables import show  # noqa: E402
from db import queries  # noqa: E402
from db.models import District  # noqa: E402
from licensing.settings import Settings  # noqa: E402
from licensing.storage import signing  # noqa: E402
from licensing.storage.districts import create_district  # noqa: E402
from licensing.storage.roster import refresh_usage  # noqa: E402
from licensing.storage.tokens import Permission, create_token  # noqa: E402

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from licensing.orchestration.service import LicensingService

SLUG = "bench"
# The seats leave 20 licenses remaining at any size, under the default threshold of 50: the
# district has its "licenses low" alert, so the alerts part of the query has work to do.
HEADROOM = 20
DASHBOARD_QUERY = (
    "query Dashboard { license { status licensedTo used total remaining display level "
    "accessLevel expiresAt daysUntilExpiration stale } "
    "usage { activeStudents inactiveStudents staff devices } "
    "alerts { kind severity message placements } }"
)
SIZES = [1_000, 1_000_000]
START_TIMEOUT_SECONDS = 180
READY_POLL_SECONDS = 0.05
TARGET_THROUGHPUT_RATIO = 1.0  # against the hand-written endpoint
TARGET_P99_RATIO = 1.5  # against the hand-written endpoint
TARGET_RAW_RATIO = 0.5  # throughput against the raw anchor
TARGET_FLAT_RATIO = 0.8
# --quick: long enough for wrk to give a figure (a few hundred answers), short enough for a
# smoke run of every server.
QUICK_SECONDS = 0.2
# A smoke run's round that got fewer answers than this (a busy machine) is run again, longer, up
# to QUICK_LONGEST_SECONDS.
QUICK_AT_LEAST_ANSWERS = 10
QUICK_LONGEST_SECONDS = 2.0

# wrk's Lua: count the answers, and as failures those with another status or GraphQL errors; print
# one RESULT line the benchmarks parse. Shared by every wrk benchmark; {status} is the status expected.
WRK_COUNTING = """
local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  failures = 0
  answered = 0
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= {status} or string.find(body or "", '"errors"', 1, true) then
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local failed, total = 0, 0
  for _, thread in ipairs(threads) do
    failed = failed + thread:get("failures")
    total = total + thread:get("answered")
  end
  local errors = summary.errors
  io.write(string.format(
    "RESULT %d %d %d %d %d %d\\n",
    total, summary.duration, failed,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""

WRK_SCRIPT = (
    """
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {secret}"
"""
    + WRK_COUNTING
)


@dataclass(frozen=True)
class Measurement:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    failures: int


@dataclass(frozen=True)
class SizeResult:
    students: int
    setup_seconds: float
    graphql: Measurement
    bare: Measurement
    raw: Measurement

    @property
    def throughput_ratio(self) -> float:
        """The product's throughput over the hand-written endpoint's."""
        return ratio(self.graphql.requests_per_second, self.bare.requests_per_second)

    @property
    def p99_ratio(self) -> float:
        """The product's p99 over the hand-written endpoint's."""
        return ratio(self.graphql.p99_ms, self.bare.p99_ms)

    @property
    def raw_ratio(self) -> float:
        """The product's throughput over the raw anchor's."""
        return ratio(self.graphql.requests_per_second, self.raw.requests_per_second)


def ratio(part: float, whole: float) -> float:
    # A machine too busy to answer one request in a round has no ratio to show.
    return part / whole if whole else float("nan")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def add_bench_district(
    service: LicensingService,
    private_key: Ed25519PrivateKey,
    *,
    slug: str,
    students: int,
    headroom: int,
) -> int:
    """A district of ``students`` active students (plus staff and graduates) with a signed
    license of ``students + headroom`` seats, its alerts raised; returns its id."""
    now = service.clock()
    name = f"{slug.title()} District"
    issue_license_file(
        service.settings,
        private_key=private_key,
        district_slug=slug,
        key_id="bench",
        terms=signing.LicenseTerms(
            license_id=f"M1T1-{slug.upper()}-0001",
            district=slug,
            licensed_to=name,
            legal_entity_name=None,
            total=students + headroom,
            created_on=date(2025, 7, 1),
            expires_on=now.astimezone(UTC).date() + timedelta(days=300),
            deactivated=False,
            overage_allowance=0.05,
            issued_at=now,
        ),
    )
    with service.database.write() as session:
        district_id = create_district(
            session, slug=slug, official_name=name, time_zone="UTC", now=now
        ).id
        queries.replace_roster_rows(
            session, district_id=district_id, source="sis", rows=roster_rows(district_id, students)
        )
        counts = refresh_usage(session, district_id=district_id, now=now)
    if counts.active_students != students:
        raise SystemExit(f"Expected {students:,} active students, counted {counts.active_students}")
    outcome = asyncio.run(service.license_updater.refresh(district_id=district_id, actor="bench"))
    if outcome.problem is not None:
        raise SystemExit(f"The benchmark license was refused: {outcome.problem.message}")
    service.read_district_state(district_id)  # raises the district's alerts
    return district_id


def build_database(data_dir: Path, students: int, database_url: str = "") -> str:
    """The benchmark district under ``data_dir`` (in the database at ``database_url`` when one
    is given); returns a MANAGE_SETTINGS token's secret."""
    settings = Settings(data_dir=data_dir, scheduler_enabled=False, database_url=database_url)
    service = build_service(settings, upgrade_schema=True)
    now = service.clock()
    private_key = signing.generate_signing_key(
        data_dir / "bench-signing-key.pem", settings.trusted_keys_dir / "bench.pub"
    )
    add_bench_district(service, private_key, slug=SLUG, students=students, headroom=HEADROOM)
    with service.database.write() as session:
        district = session.exec(select(District).where(District.slug == SLUG)).one()
        _token, secret = create_token(
            session,
            district=district,
            name="benchmark",
            permissions={Permission.MANAGE_SETTINGS},
            now=now,
        )
    service.database.dispose()
    return secret


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Server:
    """A server process to start: its command and the URL that answers once it is ready."""

    command: list[str]
    ready_url: str


@contextmanager
def running_server(
    command: list[str],
    data_dir: Path,
    ready_url: str,
    *,
    default_rate_limits: bool = False,
    database_url: str = "",
    environment: Mapping[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process with the benchmark's settings (and ``environment``'s variables), stopped
    when the block ends; yields the process."""
    with running_servers(
        [Server(command, ready_url)],
        data_dir,
        default_rate_limits=default_rate_limits,
        database_url=database_url,
        environment=environment,
    ) as [process]:
        yield process


@contextmanager
def running_servers(
    servers: list[Server],
    data_dir: Path,
    *,
    default_rate_limits: bool = False,
    database_url: str = "",
    environment: Mapping[str, str] | None = None,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Server processes with the benchmark's settings (and ``environment``'s variables), stopped
    when the block ends; yields the processes. They start side by side (each imports the
    application: seconds that overlap on several cores)."""
    variables = {
        **{name: value for name, value in os.environ.items() if not name.startswith("LICENSING_")},
        **(environment or {}),
        "LICENSING_DATA_DIR": str(data_dir),
        "LICENSING_SCHEDULER_ENABLED": "false",
        "PYTHONPATH": str(REPOSITORY),
    }
    if database_url:
        variables["LICENSING_DATABASE_URL"] = database_url
    if not default_rate_limits:
        # 32 connections share one token: the per-token budget refills faster than they can
        # spend it, so the rate limiter still runs (and costs what it costs) but never refuses.
        variables["LICENSING_RATE_LIMIT__RESTORE_RATE"] = "1000000000"
    started: list[tuple[Server, subprocess.Popen[bytes], Path]] = []
    try:
        for server in servers:
            log_path = data_dir / f"server-{len(list(data_dir.glob('server-*')))}.log"
            with log_path.open("w") as output:
                process = subprocess.Popen(
                    server.command,
                    cwd=data_dir,
                    env=variables,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            started.append((server, process, log_path))
        # Generous: four workers starting on two cores shared with other work take a while, and
        # the servers share the cores as they start.
        timeout = START_TIMEOUT_SECONDS * len(started)
        deadline = time.monotonic() + timeout
        # One client for every poll: a new one per request would build its TLS context each time.
        with httpx.Client(timeout=1) as client:
            for server, process, log_path in started:
                wait_until_ready(client, server, process, log_path, deadline, timeout)
        yield [process for _server, process, _log_path in started]
    finally:
        for _server, process, _log_path in started:
            process.terminate()
        for _server, process, _log_path in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_ready(
    client: httpx.Client,
    server: Server,
    process: subprocess.Popen[bytes],
    log_path: Path,
    deadline: float,
    timeout: float,
) -> None:
    """Poll the server's ready URL until it answers (any status below 500)."""
    command = " ".join(server.command)
    while True:
        if process.poll() is not None:
            raise SystemExit(f"{command} exited; see {log_path.name}")
        try:
            if client.get(server.ready_url).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{command} did not start within {timeout:g} s")
        time.sleep(READY_POLL_SECONDS)


def run_wrk(
    url: str, script: Path, *, connections: int, seconds: float, at_least: int = 0
) -> Measurement:
    """One wrk run of ``seconds``. With ``at_least`` (a smoke run's short rounds), a run that
    got fewer answers (a busy machine: a figure needs answers) is run again, three times as
    long each time, up to QUICK_LONGEST_SECONDS."""
    measured = run_wrk_once(url, script, connections=connections, seconds=seconds)
    while measured.requests < at_least and seconds < QUICK_LONGEST_SECONDS:
        seconds = min(seconds * 3, QUICK_LONGEST_SECONDS)
        log(f"{url}: {measured.requests} answer(s), measuring again for {seconds:g} s")
        measured = run_wrk_once(url, script, connections=connections, seconds=seconds)
    return measured


def run_wrk_once(url: str, script: Path, *, connections: int, seconds: float) -> Measurement:
    """One wrk run of ``seconds``. wrk takes whole seconds only: a shorter run (a smoke run's)
    is ended early with SIGINT, on which wrk stops and reports what it measured so far."""
    whole_seconds = max(1, math.ceil(seconds))
    wrk = subprocess.Popen(
        ["wrk", "-t1", f"-c{connections}", f"-d{whole_seconds}s", "-s", str(script), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if seconds < whole_seconds and wait_for_sigint_handler(wrk):
            time.sleep(seconds)
            wrk.send_signal(signal.SIGINT)
        stdout, stderr = wrk.communicate()
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    if wrk.returncode != 0:
        raise subprocess.CalledProcessError(wrk.returncode, wrk.args, stdout, stderr)
    line = next(line for line in stdout.splitlines() if line.startswith("RESULT "))
    answered, duration_us, failed, socket_errors, p50_us, p99_us = map(int, line.split()[1:])
    if failed or socket_errors:
        # Which kind tells a slow machine (wrk gives up on an answer after 2 s) from a wrong answer.
        log(
            f"{url}: {failed} answer(s) with another status or GraphQL errors, "
            f"{socket_errors} socket error(s) or timeout(s)"
        )
    return Measurement(
        requests_per_second=answered / (duration_us / 1_000_000),
        p50_ms=p50_us / 1000,
        p99_ms=p99_us / 1000,
        requests=answered,
        failures=failed + socket_errors,
    )


def wait_for_sigint_handler(process: subprocess.Popen[str]) -> bool:
    """Wait until ``process`` catches SIGINT (wrk sets its handler just before its load starts):
    a SIGINT sent earlier would kill it unreported. False where /proc cannot tell (not Linux):
    then the run takes its whole seconds."""
    status = Path(f"/proc/{process.pid}/status")
    mask = 1 << (signal.SIGINT - 1)
    deadline = time.monotonic() + 10
    while process.poll() is None and time.monotonic() < deadline:
        try:
            caught = next(
                line for line in status.read_text().splitlines() if line.startswith("SigCgt:")
            )
        except (OSError, StopIteration):
            return False
        if int(caught.split()[1], 16) & mask:
            return True
        time.sleep(0.005)
    return False


def median_measurement(rounds: list[Measurement]) -> Measurement:
    return Measurement(
        requests_per_second=statistics.median(m.requests_per_second for m in rounds),
        p50_ms=statistics.median(m.p50_ms for m in rounds),
        p99_ms=statistics.median(m.p99_ms for m in rounds),
        requests=sum(m.requests for m in rounds),
        failures=sum(m.failures for m in rounds),
    )


def answers_at_once(method: str, url: str, count: int, **request: Any) -> list[httpx.Response]:
    """``count`` requests sent at once, each on its own connection. Before the load, this has
    every worker of a server answer (opening its database connections): a smoke run's rounds
    are too short to absorb that."""

    async def send_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=count)
        async with httpx.AsyncClient(timeout=START_TIMEOUT_SECONDS, limits=limits) as client:
            return await asyncio.gather(
                *(client.request(method, url, **request) for _ in range(count))
            )

    return asyncio.run(send_all())


def check_same_numbers(graphql_url: str, secret: str, *, copies: int, **others: str) -> None:
    """Every server must answer the same numbers, or the comparison means nothing: ``copies``
    requests at once to each. ``others``: the JSON endpoints by name."""
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"query": DASHBOARD_QUERY}
    graphql = [
        response.json()
        for response in answers_at_once("POST", graphql_url, copies, json=body, headers=headers)
    ]
    expected = graphql[0].get("data")
    answers = [("GraphQL", answer) for answer in graphql]
    for name, url in others.items():
        answers += [
            (name, response.json())
            for response in answers_at_once("POST", url, copies, headers=headers)
        ]
    for name, answer in answers:
        if answer.get("errors") or expected is None or answer.get("data") != expected:
            raise SystemExit(
                "The endpoints disagree:\n"
                f"GraphQL: {json.dumps(graphql[0], indent=1)}\n"
                f"{name}: {json.dumps(answer, indent=1)}"
            )


def measure_size(students: int, arguments: argparse.Namespace) -> SizeResult:
    data_dir = Path(tempfile.mkdtemp(prefix="licensing-bench-dashboard-"))
    try:
        with contextlib.ExitStack() as stack:
            database_url = (
                stack.enter_context(fresh_database(arguments.postgres))
                if arguments.postgres
                else ""
            )
            return measure_servers(students, arguments, data_dir, database_url)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def measure_servers(
    students: int, arguments: argparse.Namespace, data_dir: Path, database_url: str
) -> SizeResult:
    log(f"{students:,} students: building the {database_name(database_url)} database")
    started = time.perf_counter()
    secret = build_database(data_dir, students, database_url)
    setup_seconds = time.perf_counter() - started
    graphql_port, bare_port, raw_port = free_port(), free_port(), free_port()
    graphql_url = f"http://127.0.0.1:{graphql_port}/graphql"
    bare_url = f"http://127.0.0.1:{bare_port}/dashboard"
    raw_url = f"http://127.0.0.1:{raw_port}/dashboard"
    workers = str(arguments.workers)
    licensing = [str(Path(sys.executable).with_name("licensing"))]
    graphql_command = [*licensing, "serve", "--port", str(graphql_port), "--workers", workers]

    def uvicorn_command(application: str, port: int) -> list[str]:
        return [
            # Started as the product's server starts (app/uvicorn_compat.py), on the same terms.
            *[sys.executable, "-m", "app.uvicorn_compat", application],
            *["--host", "127.0.0.1", "--port", str(port), "--workers", workers],
        ]

    graphql_script = data_dir / "graphql.lua"
    body = json.dumps({"query": DASHBOARD_QUERY})
    graphql_script.write_text(WRK_SCRIPT.format(body=body, secret=secret, status=200))
    json_script = data_dir / "json.lua"
    json_script.write_text(WRK_SCRIPT.format(body="", secret=secret, status=200))
    servers = [
        Server(graphql_command, f"http://127.0.0.1:{graphql_port}/healthz"),
        Server(uvicorn_command("bench.bare_dashboard:create_app", bare_port), bare_url),
        Server(uvicorn_command("bench.raw_anchor:create_app", raw_port), raw_url),
    ]
    with running_servers(servers, data_dir, database_url=database_url):
        check_same_numbers(
            graphql_url,
            secret,
            copies=arguments.connections,
            **{"hand-written": bare_url, "raw anchor": raw_url},
        )
        load = {"connections": arguments.connections}
        # The same order in every round: raw anchor, hand-written, product.
        targets = {
            "raw": (raw_url, json_script),
            "bare": (bare_url, json_script),
            "graphql": (graphql_url, graphql_script),
        }
        if arguments.warm_up:
            log(f"{students:,} students: warming up the servers")
            for url, script in targets.values():
                run_wrk(url, script, seconds=arguments.warm_up, **load)
        rounds: dict[str, list[Measurement]] = {name: [] for name in targets}
        for round_number in range(1, arguments.rounds + 1):
            log(f"{students:,} students: round {round_number} of {arguments.rounds}")
            for name, (url, script) in targets.items():
                rounds[name].append(
                    run_wrk(
                        url, script, seconds=arguments.seconds, at_least=arguments.at_least, **load
                    )
                )
    return SizeResult(
        students=students,
        setup_seconds=setup_seconds,
        graphql=median_measurement(rounds["graphql"]),
        bare=median_measurement(rounds["bare"]),
        raw=median_measurement(rounds["raw"]),
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(results: list[SizeResult], arguments: argparse.Namespace) -> str:
    database = database_name(arguments.postgres)
    lines = [
        f"### Dashboard query against a hand-written endpoint and the raw anchor, {database}",
        "",
        f"`.venv/bin/python bench/dashboard.py{' --postgres URL' if arguments.postgres else ''}`: "
        f"{database}, {arguments.connections} connections from wrk, {arguments.workers} uvicorn "
        f"worker(s) for each server, {arguments.rounds} alternating rounds of "
        f"{arguments.seconds:g} s per server (medians shown). Raw anchor: Starlette and the "
        f"driver alone, one statement (`bench/raw_anchor.py`); hand-written: Starlette, "
        "SQLAlchemy Core, three statements (`bench/bare_dashboard.py`); GraphQL: the product, "
        "`licensing serve`. A response that is not HTTP 200 or carries GraphQL `errors` is a "
        "failure.",
        "",
        "| students | endpoint | requests/s | p50 ms | p99 ms | failures "
        "| against hand-written | p99 against hand-written | against raw |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        for name, measured in (
            ("raw anchor", result.raw),
            ("hand-written", result.bare),
            ("GraphQL", result.graphql),
        ):
            against_raw = ratio(measured.requests_per_second, result.raw.requests_per_second)
            ratios = {
                "raw anchor": ["", "", ""],
                "hand-written": ["", "", f"{against_raw:.2f}x"],
                "GraphQL": [
                    f"{result.throughput_ratio:.2f}x",
                    f"{result.p99_ratio:.2f}x",
                    f"{result.raw_ratio:.2f}x",
                ],
            }[name]
            lines.append(
                f"| {result.students:,} | {name} | {measured.requests_per_second:,.0f} "
                f"| {measured.p50_ms:.1f} | {measured.p99_ms:.1f} | {measured.failures} "
                f"| {' | '.join(ratios)} |"
            )
    lines.append("")
    for result in results:
        lines.append(
            f"- {result.students:,} students: GraphQL against hand-written "
            f"{result.throughput_ratio:.2f}x (target >= {TARGET_THROUGHPUT_RATIO:.1f}x: "
            f"{verdict(result.throughput_ratio >= TARGET_THROUGHPUT_RATIO)}), p99 "
            f"{result.p99_ratio:.2f}x (target <= {TARGET_P99_RATIO:g}x: "
            f"{verdict(result.p99_ratio <= TARGET_P99_RATIO)}); against the raw anchor "
            f"{result.raw_ratio:.2f}x (target >= {TARGET_RAW_RATIO:g}x: "
            f"{verdict(result.raw_ratio >= TARGET_RAW_RATIO)})."
        )
    if len(results) > 1:
        smallest, largest = results[0], results[-1]
        flat = ratio(largest.graphql.requests_per_second, smallest.graphql.requests_per_second)
        lines.append(
            f"- GraphQL throughput at {largest.students:,} students over {smallest.students:,}: "
            f"{flat:.2f} (target >= {TARGET_FLAT_RATIO}: {verdict(flat >= TARGET_FLAT_RATIO)})."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, nargs="+", help="district sizes")
    parser.add_argument(
        "--workers", type=int, help="uvicorn workers per server (default 1, 4 on PostgreSQL)"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--postgres",
        metavar="SERVER_URL",
        help="measure on PostgreSQL: a new database on this server (a role that may create one)",
    )
    parser.add_argument("--seconds", type=float, help="seconds of load per round and server")
    parser.add_argument("--rounds", type=int, help="alternating rounds per size")
    parser.add_argument(
        "--quick", action="store_true", help="a small size, one short round, no warm-up"
    )
    parser.add_argument(
        "--markdown", action="store_true", help="Print the result section as markdown."
    )
    arguments = parser.parse_args()
    arguments.students = arguments.students or ([500] if arguments.quick else SIZES)
    arguments.seconds = arguments.seconds or (QUICK_SECONDS if arguments.quick else 8)
    arguments.rounds = arguments.rounds or (1 if arguments.quick else 3)
    # A smoke run's figures are not compared: the check of the numbers warms the servers enough.
    arguments.warm_up = 0 if arguments.quick else min(2, arguments.seconds)
    arguments.at_least = QUICK_AT_LEAST_ANSWERS if arguments.quick else 0
    arguments.workers = arguments.workers or default_workers(
        arguments.postgres, quick=arguments.quick
    )
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed for the load: install Debian's package 'wrk'.")
    # The benchmark's own configuration only: no LICENSING_* variable of the developer's (a
    # database URL, say) reaches the setup.
    for name in [name for name in os.environ if name.startswith("LICENSING_")]:
        del os.environ[name]
    results = [measure_size(students, arguments) for students in sorted(arguments.students)]
    show(report(results, arguments), as_markdown=arguments.markdown)
    failures = sum(
        result.graphql.failures + result.bare.failures + result.raw.failures for result in results
    )
    if failures:
        log(f"{failures} requests failed")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
