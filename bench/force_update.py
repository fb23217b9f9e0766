"""Benchmark: 1,000 concurrent Force License Update presses against the real server.

    .venv/bin/python bench/force_update.py                   # 1,000 calls; 1 worker, then 4
    .venv/bin/python bench/force_update.py --calls 300 --workers 2
    .venv/bin/python bench/force_update.py --quick --markdown # as bench/run.py calls it
    .venv/bin/python bench/force_update.py --postgres postgresql+psycopg://USER:PW@HOST/postgres

For each worker count it sets up a fresh database (a SQLite file, or with ``--postgres
SERVER_URL`` a new database on that server) with one district whose license source
is a licensing server: the reference server (app/dev_license_server.py) in this process, counting
the requests it gets and answering each after ``--upstream-delay`` seconds, as a server across the
internet would. The district is created with a MANAGE_SETTINGS token and its first license (1000
seats) fetched; then the server is given new terms (1100 seats), ``licensing serve --workers N``
starts in a subprocess (its scheduler off, so that only the presses ask the server), and all the
calls are sent at once from an asyncio httpx client, each on its own connection:
``mutation { forceLicenseUpdate { ... } }``.

Each answer is sorted by kind: updated or unchanged (the press that asked the server and those
that joined its request), throttled (within the cooldown), an error in the payload, an HTTP
error. The audit log then tells how many presses asked the server. The target (SPEC section 8)
is exactly one upstream request for 1,000 concurrent presses; the script exits with status 1
when a run made any other number, or when a call was not answered with a payload.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.dev_license_server import create_license_server
from app.runtime import build_service
from bench.postgres import database_name, fresh_database
from bench.tables import markdown_table, show
from db.models import AuditEvent, District, License
from licensing.orchestration.license_updates import FORCED_ACTION
from licensing.settings import Settings
from licensing.storage import signing
from licensing.storage.districts import create_district
from licensing.storage.tokens import Permission, create_token

REPOSITORY = Path(__file__).resolve().parents[1]
SLUG = "bench"
API_KEY = "bench-upstream-api-key"
KEY_ID = "bench"
CALLS = 1_000
WORKERS = (1, 4)
QUICK_CALLS = 50
QUICK_WORKERS = (1,)
UPSTREAM_DELAY_SECONDS = 0.25
START_TIMEOUT_SECONDS = 120
CALL_TIMEOUT_SECONDS = 120
MUTATION = (
    "mutation { forceLicenseUpdate { updated throttled inProgress retryAfterSeconds "
    "errors { code } } }"
)


def terms(seats: int) -> signing.LicenseTerms:
    return signing.LicenseTerms(
        license_id="M1T1-BENCH",
        district=SLUG,
        licensed_to="Benchmark District",
        legal_entity_name=None,
        total=seats,
        created_on=date(2025, 8, 1),
        expires_on=date(2030, 6, 30),
        deactivated=False,
        overage_allowance=0.0,
        issued_at=datetime.now(UTC),
    )


class CountingUpstream:
    """The reference licensing server, counting its requests and answering after a delay."""

    def __init__(self, signing_key: Ed25519PrivateKey, *, delay_seconds: float) -> None:
        self.licenses = {SLUG: terms(1000)}
        self.delay_seconds = delay_seconds
        self.requests = 0
        self.app = create_license_server(
            signing_key=signing_key,
            licenses=self.licenses,
            api_keys={API_KEY: SLUG},
            key_id=KEY_ID,
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests += 1
            await asyncio.sleep(self.delay_seconds)
        await self.app(scope, receive, send)


@contextmanager
def serving_in_thread(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 (a free port) in a background thread."""
    # IPPROTO_TCP, so that asyncio turns Nagle's algorithm off (app/uvicorn_compat.py).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", ws="none", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise SystemExit("The upstream licensing server did not start.")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_settings(
    data_dir: Path,
    *,
    port: int,
    workers: int,
    upstream_url: str,
    key: str,
    database_url: str = "",
) -> dict[str, Any]:
    """The server's configuration, as values for ``Settings``."""
    return {
        "data_dir": str(data_dir),
        "database_url": database_url or f"sqlite:///{data_dir / 'licensing.db'}",
        "host": "127.0.0.1",
        "port": port,
        "workers": workers,
        # The scheduler would refresh the license on its own: only the presses may ask the server.
        "scheduler_enabled": False,
        "license_public_keys": [key],
        "districts": {
            SLUG: {
                "license_source": "licensing_server",
                "license_options": {"url": upstream_url, "api_key": API_KEY},
            }
        },
    }


def prepare_database(values: dict[str, Any], *, tokens: int) -> list[str]:
    """The district, its first license and ``tokens`` MANAGE_SETTINGS tokens; their secrets."""
    service = build_service(Settings(**values), upgrade_schema=True)
    with service.database.write() as session:
        district = create_district(
            session,
            slug=SLUG,
            official_name="Benchmark District",
            time_zone="UTC",
            now=service.clock(),
        )
        secrets = [
            create_token(
                session,
                district=district,
                name=f"benchmark {number}",
                permissions={Permission.MANAGE_SETTINGS},
                now=service.clock(),
            )[1]
            for number in range(tokens)
        ]
        district_id = district.id
    outcome = asyncio.run(service.license_updater.refresh(district_id=district_id, actor="setup"))
    service.database.dispose()
    if not outcome.updated:
        reason = outcome.problem.message if outcome.problem else "no change"
        raise SystemExit(f"The district's first license was not stored: {reason}")
    return secrets


@contextmanager
def licensing_server(values: dict[str, Any], folder: Path) -> Iterator[str]:
    """``licensing serve`` in a subprocess, until every worker has started; its URL."""
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("LICENSING_")
    }
    # Every setting as an environment variable (nested ones as JSON), read as the docs describe.
    environment.update(
        {
            f"LICENSING_{name.upper()}": value if isinstance(value, str) else json.dumps(value)
            for name, value in values.items()
        }
    )
    environment["PYTHONPATH"] = str(REPOSITORY)
    log_path = folder / "server.log"
    with open(log_path, "w", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-c", "from app.cli import main; main()", "serve"],
            cwd=folder,  # no licensing.toml there: the environment is the whole configuration
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{values['port']}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while log_path.read_text().count("Application startup complete") < values["workers"]:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    f"`licensing serve` did not start:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Answers:
    kinds: Counter[str] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)


async def press(
    client: httpx.AsyncClient, secret: str, answers: Answers, start: asyncio.Event
) -> None:
    await start.wait()
    started = time.perf_counter()
    try:
        response = await client.post(
            "/graphql", json={"query": MUTATION}, headers={"Authorization": f"Bearer {secret}"}
        )
    except httpx.HTTPError as error:
        answers.kinds[f"HTTP error: {type(error).__name__}"] += 1
        return
    answers.seconds.append(time.perf_counter() - started)
    if response.status_code != 200:
        answers.kinds[f"HTTP error: {response.status_code}"] += 1
        return
    body = response.json()
    payload = (body.get("data") or {}).get("forceLicenseUpdate")
    if payload is None:
        answers.kinds["GraphQL error"] += 1
    elif payload["errors"]:
        answers.kinds["error: " + ",".join(error["code"] for error in payload["errors"])] += 1
    elif payload["throttled"]:
        answers.kinds["throttled"] += 1
    elif payload["inProgress"]:  # the upstream took longer than force_update_wait_seconds
        answers.kinds["in progress"] += 1
    else:
        answers.kinds["updated" if payload["updated"] else "unchanged"] += 1


async def press_all(url: str, secrets: list[str], calls: int) -> tuple[Answers, float]:
    """Every call at once, each on its own connection, the tokens taken in turn; the answers
    and the seconds taken."""
    answers = Answers()
    limits = httpx.Limits(max_connections=calls, max_keepalive_connections=calls)
    async with httpx.AsyncClient(
        base_url=url,
        limits=limits,
        timeout=CALL_TIMEOUT_SECONDS,
    ) as client:
        start = asyncio.Event()
        tasks = [
            asyncio.create_task(press(client, secrets[number % len(secrets)], answers, start))
            for number in range(calls)
        ]
        await asyncio.sleep(0)  # every task waits at the start line
        started = time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        return answers, time.perf_counter() - started


def audit_outcomes(values: dict[str, Any]) -> tuple[Counter[str], int]:
    """The forced updates in the audit log, by outcome; the license's seats afterwards."""
    service = build_service(Settings(**values))
    with service.database.read() as session:
        district = session.exec(select(District).where(District.slug == SLUG)).one()
        events = session.exec(
            select(AuditEvent).where(
                AuditEvent.district_id == district.id, AuditEvent.action == FORCED_ACTION
            )
        )
        outcomes = Counter(event.outcome for event in events)
        seats = session.exec(select(License).where(License.district_id == district.id)).one().total
    service.database.dispose()
    return outcomes, seats


@dataclass(frozen=True)
class Run:
    workers: int
    calls: int
    answers: Answers
    seconds: float
    upstream_requests: int
    audit: Counter[str]
    seats_after: int

    @property
    def asked(self) -> int:
        """Presses whose forced update asked the server, per the audit log."""
        return sum(count for outcome, count in self.audit.items() if outcome != "throttled")

    @property
    def answered(self) -> int:
        return sum(self.answers.kinds.values())

    @property
    def failed_calls(self) -> int:
        return sum(
            count
            for kind, count in self.answers.kinds.items()
            if kind not in ("updated", "unchanged", "throttled", "in progress")
        )


def measure(
    workers: int, calls: int, *, tokens: int | None, delay_seconds: float, postgres: str | None
) -> Run:
    signing_key = Ed25519PrivateKey.generate()
    upstream = CountingUpstream(signing_key, delay_seconds=delay_seconds)
    public_key = public_key_text(signing_key)
    with (
        tempfile.TemporaryDirectory(prefix="force-update-bench-") as temporary,
        # The setup in this process reads the configuration too: no licensing.toml there.
        contextlib.chdir(temporary),
        serving_in_thread(upstream) as upstream_url,
        contextlib.ExitStack() as stack,
    ):
        database_url = (
            stack.enter_context(fresh_database(postgres, prefix="licensing_bench_force"))
            if postgres
            else ""
        )
        folder = Path(temporary)
        values = server_settings(
            folder / "data",
            port=free_port(),
            workers=workers,
            upstream_url=upstream_url,
            key=public_key,
            database_url=database_url,
        )
        secrets = prepare_database(values, tokens=tokens or calls)
        # New terms on the server: the district bought 100 more seats.
        upstream.licenses[SLUG] = terms(1100)
        upstream.requests = 0
        log(f"{workers} worker(s): starting `licensing serve`...")
        with licensing_server(values, folder) as url:
            log(f"{workers} worker(s): {calls:,} concurrent forceLicenseUpdate calls...")
            answers, seconds = asyncio.run(press_all(url, secrets, calls))
        audit, seats = audit_outcomes(values)
    run = Run(workers, calls, answers, seconds, upstream.requests, audit, seats)
    log(
        f"  {seconds:.1f} s, upstream requests {run.upstream_requests}, "
        f"answers {dict(answers.kinds)}, seats now {seats:,}"
    )
    return run


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The public half as ``license_public_keys`` takes it: base64 of the raw 32 bytes."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def section(runs: list[Run], delay_seconds: float, *, tokens: int | None, database: str) -> str:
    """The result section, in markdown."""
    rows = []
    for run in runs:
        kinds = run.answers.kinds
        others = ", ".join(
            f"{count:,} {kind}"
            for kind, count in sorted(kinds.items())
            if kind not in ("updated", "throttled")
        )
        latencies = sorted(run.answers.seconds)
        rows.append(
            [
                run.workers,
                f"{run.calls:,}",
                f"{kinds['updated']:,}",
                f"{max(0, kinds['updated'] + kinds['unchanged'] - run.asked):,}",
                f"{kinds['throttled']:,}",
                others or "none",
                f"**{run.upstream_requests}**",
                f"{run.seconds:.2f}",
                f"{statistics.median(latencies):.2f}" if latencies else "",
            ]
        )
    table = markdown_table(
        [
            "workers",
            "calls",
            "updated",
            "of which joined the request",
            "throttled",
            "other answers",
            "upstream requests",
            "seconds",
            "median answer s",
        ],
        rows,
        numeric=[True, True, True, True, True, False, True, True, True],
    )
    audit = "; ".join(
        f"{run.workers} worker{'s' if run.workers > 1 else ''}: "
        + ", ".join(f"{count:,} {outcome}" for outcome, count in sorted(run.audit.items()))
        for run in runs
    )
    calls = ", ".join(sorted({f"{run.calls:,}" for run in runs}))
    spread = "with its own API token" if tokens is None else f"spread over {tokens:,} API tokens"
    met = all(run.upstream_requests == 1 and run.failed_calls == 0 for run in runs)
    return "\n\n".join(
        [
            f"### Concurrent Force License Update, {database}",
            f"{calls} `forceLicenseUpdate` mutations sent at once, each on its own connection "
            f"and {spread} (each token has its own rate limit), to `licensing serve` on "
            f"127.0.0.1 (a fresh {database} database, the scheduler off) from an asyncio httpx "
            "client. The district's license source is the reference licensing server, which "
            f"counts its requests and answers each after {delay_seconds:g} s. It holds new terms "
            "(1000 to 1100 seats), so the press that asks it gets `updated: true`, and so do "
            'the presses that share its request ("joined the request": the updated answers '
            "minus the presses the audit log shows asking). Later presses, and with several "
            "workers the presses reaching another worker, are `throttled` by the cooldown kept "
            "in the database. Seconds run from the first call sent to the last answer.",
            table,
            f"Forced updates in the audit log: {audit}.",
            "Target (SPEC section 8): 1,000 concurrent forceLicenseUpdate calls make exactly "
            f"one upstream request, and every call is answered: {'met' if met else '**not met**'}.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, help=f"concurrent calls (default {CALLS:,})")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        help=f"server worker counts, one run each (default {' and '.join(map(str, WORKERS))})",
    )
    parser.add_argument(
        "--upstream-delay",
        type=float,
        default=UPSTREAM_DELAY_SECONDS,
        help="seconds the licensing server takes to answer",
    )
    parser.add_argument(
        "--tokens",
        type=int,
        help="API tokens the calls are spread over (default: one per call)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer calls, one worker")
    parser.add_argument("--markdown", action="store_true", help="print the result as markdown")
    parser.add_argument(
        "--postgres",
        metavar="SERVER_URL",
        help="serve from PostgreSQL: a new database on this server per run",
    )
    args = parser.parse_args()
    # The benchmark's own configuration only: no LICENSING_* variable (a developer's database
    # URL, say) reaches the setup or the server.
    for name in [name for name in os.environ if name.startswith("LICENSING_")]:
        del os.environ[name]
    calls = args.calls or (QUICK_CALLS if args.quick else CALLS)
    worker_counts = args.workers or (QUICK_WORKERS if args.quick else WORKERS)
    runs = [
        measure(
            workers,
            calls,
            tokens=args.tokens,
            delay_seconds=args.upstream_delay,
            postgres=args.postgres,
        )
        for workers in worker_counts
    ]
    database = database_name(args.postgres)
    show(
        section(runs, args.upstream_delay, tokens=args.tokens, database=database),
        as_markdown=args.markdown,
    )
    if any(run.upstream_requests != 1 or run.failed_calls for run in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
