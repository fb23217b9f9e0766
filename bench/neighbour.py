"""Benchmark: one token floods the server; does another district's dashboard stay fast?

    .venv/bin/python bench/neighbour.py [--students 200000] [--seconds 8] [--quick] [--markdown]
    .venv/bin/python bench/neighbour.py --postgres postgresql+psycopg://USER:PW@HOST/postgres

It builds a database (a SQLite file, or with ``--postgres SERVER_URL`` a new database on that
server) with two districts: "flooding" (``--students`` students, so its ``countReview`` is costly)
and "neighbour" (1,000 students), and serves it with ``licensing serve`` (one worker on SQLite,
4 on PostgreSQL, the default rate limits: what protects the neighbour is what is measured).
One client reads the neighbour's dashboard query every ``PACE_SECONDS``, first at rest, then
while the flooding district's API token (a fresh one for each shape) sends, from
``FLOOD_CONNECTIONS`` connections as fast as it is answered, one attack shape at a time:

- huge documents: 2,001 ``__typename`` (over the token limit), whitespace varied so no cache helps;
- invalid documents: ``license { ... }`` 200 times with differing subfields and an unknown field;
- repeated fields: ``{ license { display } }`` 440 times, whitespace varied;
- costly queries: ``countReview`` on the flooding district;
- many subscriptions: websockets opening subscriptions until refused, held open.

It prints, for each shape, the neighbour's median and p99 at rest and under load, their ratio,
and how the flood was answered; the target (SPEC section 8) is that the neighbour's median stays
under 3x its median at rest or 20 ms, whichever is larger. A calibration table shows, for each
operation, its cost in points, its median time in the server and the points per millisecond. Every
loop is bounded in count and time, and only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from sqlmodel import select  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from app.runtime import build_service  # noqa: E402
from bench.dashboard import (  # noqa: E402
    DASHBOARD_QUERY,
    add_bench_district,
    free_port,
    running_server,
)
from bench.postgres import database_name, default_workers, fresh_database  # noqa: E402
from bench.tables import markdown_table, show  # noqa: E402
from db.models import District  # noqa: E402
from licensing.settings import Settings  # noqa: E402
from licensing.storage import signing  # noqa: E402
from licensing.storage.tokens import Permission, create_token  # noqa: E402

NEIGHBOUR_STUDENTS = 1_000
PACE_SECONDS = 0.02
FLOOD_CONNECTIONS = 4
# Requests a second from each flood connection, whatever the answer (Retry-After is ignored):
# 40 a second in all, twice the rate of the flood that took the neighbour to 11.6 s before.
FLOOD_RATE_PER_CONNECTION = 10
# A bound on each flood connection's requests, whatever the time.
MAX_FLOOD_REQUESTS = 5_000
SUBSCRIPTIONS_PER_SOCKET = 10
FLOOD_HEAD_START_SECONDS = 0.5
WARM_UP_SECONDS = 1.0
QUICK_SECONDS = 0.2
TARGET_RATIO = 3.0
TARGET_FLOOR_MS = 20.0
REPEATED_LICENSE = " license { display }"
LICENSE_FIELDS = ("display", "used", "total", "remaining", "level", "status", "stale")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- The database -------------------------------------------------------------------------------


def build_database(data_dir: Path, flooding_students: int, database_url: str = "") -> Settings:
    settings = Settings(data_dir=data_dir, scheduler_enabled=False, database_url=database_url)
    service = build_service(settings, upgrade_schema=True)
    private_key = signing.generate_signing_key(
        data_dir / "bench-signing-key.pem", settings.trusted_keys_dir / "bench.pub"
    )
    add_bench_district(
        service, private_key, slug="flooding", students=flooding_students, headroom=500
    )
    add_bench_district(
        service, private_key, slug="neighbour", students=NEIGHBOUR_STUDENTS, headroom=500
    )
    service.database.dispose()
    return settings


def new_token(settings: Settings, slug: str, permission: Permission) -> str:
    """A fresh token (a full budget) for ``slug``; made beside the running server, as an
    administrator would."""
    service = build_service(settings)
    try:
        with service.database.write() as session:
            district = session.exec(select(District).where(District.slug == slug)).one()
            _token, secret = create_token(
                session,
                district=district,
                name="bench",
                permissions={permission},
                now=service.clock(),
            )
        return secret
    finally:
        service.database.dispose()


# --- Attack shapes ------------------------------------------------------------------------------


def varied(number: int) -> str:
    """Whitespace that differs per request, so no parse or validation cache helps."""
    return " " * (number % 97 + 1) + "\n" * (number % 5)


def huge_document(number: int) -> dict[str, object]:
    return {"query": "{" + " __typename" * 2_001 + varied(number) + "}"}


def invalid_document(number: int) -> dict[str, object]:
    orders = list(itertools.permutations(LICENSE_FIELDS, 3))
    start = number % len(orders)
    subsets = [" ".join(orders[(start + n) % len(orders)]) for n in range(200)]
    body = " ".join(f"license {{ {fields} }}" for fields in subsets)
    return {"query": "{ " + body + varied(number) + " noSuchField }"}


def repeated_fields(number: int) -> dict[str, object]:
    return {"query": "{" + REPEATED_LICENSE * 440 + varied(number) + "}"}


def count_review(number: int) -> dict[str, object]:
    return {"query": "{ countReview { reason students licensesFreed }" + varied(number) + "}"}


HTTP_SHAPES: dict[str, Callable[[int], dict[str, object]]] = {
    "huge documents": huge_document,
    "invalid documents": invalid_document,
    "repeated fields": repeated_fields,
    "costly queries (countReview)": count_review,
}


@dataclass
class Flood:
    answers: Counter[str] = field(default_factory=Counter)

    def note(self, what: str) -> None:
        self.answers[what] += 1

    def summary(self) -> str:
        return ", ".join(f"{count} {what}" for what, count in self.answers.most_common(3))


async def flood_http(
    url: str, token: str, shape: Callable[[int], dict[str, object]], until: float, flood: Flood
) -> None:
    headers = {"Authorization": f"Bearer {token}"}

    async def one_connection(offset: int) -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            for number in range(offset, offset + MAX_FLOOD_REQUESTS):
                started = time.monotonic()
                if started >= until:
                    return
                response = await client.post(url, json=shape(number), headers=headers)
                code = "200"
                if response.status_code == 200:
                    errors = response.json().get("errors")
                    code = errors[0]["extensions"]["code"] if errors else "200 ok"
                else:
                    code = str(response.status_code)
                flood.note(code)
                pause = 1 / FLOOD_RATE_PER_CONNECTION - (time.monotonic() - started)
                await asyncio.sleep(max(0.0, pause))

    await asyncio.gather(
        *(one_connection(n * MAX_FLOOD_REQUESTS) for n in range(FLOOD_CONNECTIONS))
    )


async def flood_subscriptions(ws_url: str, token: str, until: float, flood: Flood) -> None:
    subscription = "subscription { licenseChanged { display used } }"

    async def one_socket(number: int) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with connect(
                ws_url,
                subprotocols=["graphql-transport-ws"],
                additional_headers=headers,
                open_timeout=10,
                # The flood is over when the socket closes: a server slow to answer the close
                # handshake (seen under this flood) need not hold the run for websockets'
                # default 10 s.
                close_timeout=1,
            ) as socket:
                await socket.send(json.dumps({"type": "connection_init", "payload": {}}))
                await socket.recv()
                for operation in range(SUBSCRIPTIONS_PER_SOCKET):
                    await socket.send(
                        json.dumps(
                            {
                                "id": f"{number}-{operation}",
                                "type": "subscribe",
                                "payload": {"query": subscription},
                            }
                        )
                    )
                while time.monotonic() < until:
                    try:
                        message = json.loads(
                            await asyncio.wait_for(socket.recv(), until - time.monotonic())
                        )
                    except TimeoutError:
                        break
                    payload = message.get("payload")
                    errors = (
                        payload if message["type"] == "error" else (payload or {}).get("errors")
                    )
                    if errors:
                        flood.note(errors[0].get("extensions", {}).get("code", "error"))
                    elif message["type"] == "next":
                        flood.note("subscribed")
        except (OSError, TimeoutError) as error:
            flood.note(type(error).__name__)

    await asyncio.gather(*(one_socket(number) for number in range(FLOOD_CONNECTIONS * 4)))


# --- Measuring the neighbour --------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    median_ms: float
    p99_ms: float
    requests: int
    failures: int


async def neighbour_latency(url: str, token: str, seconds: float) -> Latency:
    headers = {"Authorization": f"Bearer {token}"}
    timings: list[float] = []
    failures = 0
    until = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=60) as client:
        for number in range(int(seconds / PACE_SECONDS) + 1):
            # At least one answer, however busy the machine: a median needs a figure.
            if time.monotonic() >= until and timings:
                break
            started = time.perf_counter()
            body = {"query": DASHBOARD_QUERY + varied(number % 3)}
            response = await client.post(url, json=body, headers=headers)
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200 or "errors" in response.json():
                failures += 1
            await asyncio.sleep(max(0.0, PACE_SECONDS - timings[-1] / 1000))
    timings.sort()
    return Latency(
        median_ms=statistics.median(timings),
        p99_ms=timings[min(len(timings) - 1, int(len(timings) * 0.99))],
        requests=len(timings),
        failures=failures,
    )


async def under_load(
    url: str, token: str, seconds: float, attack: Callable[[float], Awaitable[None]]
) -> Latency:
    # The flood is under way before the neighbour is measured (a smoke run's shorter seconds
    # shorten the head start too).
    head_start = min(FLOOD_HEAD_START_SECONDS, seconds)
    until = time.monotonic() + seconds + head_start
    flooding = asyncio.ensure_future(attack(until))
    await asyncio.sleep(head_start)
    measured = await neighbour_latency(url, token, seconds)
    await flooding
    return measured


# --- Calibration: points per millisecond --------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    operation: str
    points: int
    median_ms: float

    @property
    def points_per_ms(self) -> float:
        return self.points / self.median_ms if self.median_ms else 0.0


CALIBRATED = {
    "dashboard": DASHBOARD_QUERY,
    "activeStudents, 100 rows": "{ activeStudents(first: 100) { edges { node { sourceId grade "
    "school } } } }",
    "auditLog, 100 rows": "{ auditLog(first: 100) { edges { node { action actor } } } }",
    "usageHistory, 800 days": "{ usageHistory(days: 800) { day activeStudents } }",
    "countReview (flooding district)": "{ countReview { reason students } }",
    "refused: 2,001 tokens": "{" + " __typename" * 2_001 + "}",
}


async def calibrate(url: str, settings: Settings, runs: int) -> list[Calibration]:
    """Each operation's median time (sequential requests at rest) and its charge."""
    results = []
    async with httpx.AsyncClient(timeout=120) as client:
        for operation, query in CALIBRATED.items():
            timings, points = [], 0
            for run in range(runs):
                token = await asyncio.to_thread(
                    new_token, settings, "flooding", Permission.MANAGE_SETTINGS
                )
                started = time.perf_counter()
                response = await client.post(
                    url,
                    json={"query": query + varied(run)},
                    headers={"Authorization": f"Bearer {token}"},
                )
                timings.append((time.perf_counter() - started) * 1000)
                points = response.json()["extensions"]["cost"]["requested"]
            results.append(Calibration(operation, points, statistics.median(timings)))
    return results


# --- The run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapeResult:
    shape: str
    loaded: Latency
    flood: str


def target_met(rest: Latency, loaded: Latency) -> bool:
    return loaded.median_ms <= max(TARGET_RATIO * rest.median_ms, TARGET_FLOOR_MS)


async def run(
    arguments: argparse.Namespace, data_dir: Path, settings: Settings
) -> tuple[Latency, list[ShapeResult], list[Calibration]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/graphql"
    licensing = str(Path(sys.executable).with_name("licensing"))
    command = [licensing, "serve", "--port", str(port), "--workers", str(arguments.workers)]

    def neighbour() -> str:
        # Its own fresh budget for each measurement: it reads faster than a tab would.
        return new_token(settings, "neighbour", Permission.VIEW_LICENSE)

    ready = f"http://127.0.0.1:{port}/healthz"
    with running_server(
        command,
        data_dir,
        ready,
        default_rate_limits=True,
        database_url=settings.database_url,
    ):
        log("calibrating")
        calibration = await calibrate(url, settings, arguments.runs)
        log("the neighbour at rest")
        await neighbour_latency(url, neighbour(), min(WARM_UP_SECONDS, arguments.seconds))
        rest = await neighbour_latency(url, neighbour(), arguments.seconds)
        results = []
        for shape, make in HTTP_SHAPES.items():
            log(f"flood: {shape}")
            token = new_token(settings, "flooding", Permission.MANAGE_SETTINGS)
            flood = Flood()

            async def attack(until: float, make=make, token=token, flood=flood) -> None:
                await flood_http(url, token, make, until, flood)

            loaded = await under_load(url, neighbour(), arguments.seconds, attack)
            results.append(ShapeResult(shape, loaded, flood.summary()))
        log("flood: many subscriptions")
        token = new_token(settings, "flooding", Permission.VIEW_LICENSE)
        flood = Flood()
        ws_url = url.replace("http://", "ws://")

        async def subscriptions(until: float) -> None:
            await flood_subscriptions(ws_url, token, until, flood)

        loaded = await under_load(url, neighbour(), arguments.seconds, subscriptions)
        results.append(ShapeResult("many subscriptions", loaded, flood.summary()))
    return rest, results, calibration


def report(
    rest: Latency, results: list[ShapeResult], calibration: list[Calibration], arguments
) -> str:
    rows = [("at rest", f"{rest.median_ms:.1f}", f"{rest.p99_ms:.1f}", "", "", "", "")]
    for result in results:
        loaded = result.loaded
        rows.append(
            (
                result.shape,
                f"{loaded.median_ms:.1f}",
                f"{loaded.p99_ms:.1f}",
                f"{loaded.median_ms / rest.median_ms:.2f}",
                f"{loaded.p99_ms / rest.p99_ms:.2f}",
                "met" if target_met(rest, loaded) else "NOT met",
                result.flood,
            )
        )
    shapes = markdown_table(
        (
            "flood",
            "neighbour median ms",
            "p99 ms",
            "median ratio",
            "p99 ratio",
            "target",
            "how the flood was answered",
        ),
        rows,
        numeric=(False, True, True, True, True, False, False),
    )
    points = markdown_table(
        ("operation", "points", "median ms", "points per ms"),
        [
            (c.operation, f"{c.points:,}", f"{c.median_ms:.1f}", f"{c.points_per_ms:.1f}")
            for c in calibration
        ],
        numeric=(False, True, True, True),
    )
    return "\n".join(
        [
            "### Neighbour safety: one token floods, another district's dashboard, "
            f"{database_name(arguments.postgres)}",
            "",
            f"`.venv/bin/python bench/neighbour.py{' --postgres URL' if arguments.postgres else ''}"
            f"`: {database_name(arguments.postgres)}, {arguments.workers} worker(s), default "
            "rate limits; the "
            f"flooding district has {arguments.students:,} students, the neighbour "
            f"{NEIGHBOUR_STUDENTS:,}. The neighbour's dashboard is read every "
            f"{PACE_SECONDS * 1000:.0f} ms for {arguments.seconds:g} s at rest and under each "
            f"flood ({FLOOD_CONNECTIONS} connections from one fresh token, each sending "
            f"{FLOOD_RATE_PER_CONNECTION} requests a second whatever the answer; "
            "subscriptions: 32 websockets of 10 each). Target: the neighbour's median under "
            f"{TARGET_RATIO:g}x its median at rest or {TARGET_FLOOR_MS:g} ms, whichever is larger.",
            "",
            shapes,
            "",
            "Calibration: each operation's charge against its median time in the server (one "
            f"request at a time, at rest, {arguments.runs} runs; time as the client sees it, so "
            "it includes HTTP).",
            "",
            points,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, help="students in the flooding district")
    parser.add_argument("--seconds", type=float, help="seconds of measurement per shape")
    parser.add_argument("--runs", type=int, help="runs of each operation for the calibration")
    parser.add_argument("--quick", action="store_true", help="small sizes, short floods")
    parser.add_argument("--markdown", action="store_true", help="print the section as markdown")
    parser.add_argument(
        "--postgres",
        metavar="SERVER_URL",
        help="serve from PostgreSQL: a new database on this server (a role that may create one)",
    )
    parser.add_argument("--workers", type=int, help="server workers (default 1, 4 on PostgreSQL)")
    arguments = parser.parse_args()
    arguments.workers = arguments.workers or default_workers(
        arguments.postgres, quick=arguments.quick
    )
    arguments.students = arguments.students or (1_000 if arguments.quick else 200_000)
    arguments.seconds = arguments.seconds or (QUICK_SECONDS if arguments.quick else 8)
    arguments.runs = arguments.runs or (1 if arguments.quick else 5)
    for name in [name for name in os.environ if name.startswith("LICENSING_")]:
        del os.environ[name]
    data_dir = Path(tempfile.mkdtemp(prefix="licensing-bench-neighbour-"))
    try:
        with contextlib.ExitStack() as stack:
            database_url = (
                stack.enter_context(fresh_database(arguments.postgres))
                if arguments.postgres
                else ""
            )
            log(
                f"building the {database_name(arguments.postgres)} database "
                f"({arguments.students:,} students in the flooding district)"
            )
            settings = build_database(data_dir, arguments.students, database_url)
            rest, results, calibration = asyncio.run(run(arguments, data_dir, settings))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    show(report(rest, results, calibration, arguments), as_markdown=arguments.markdown)
    failures = rest.failures + sum(result.loaded.failures for result in results)
    if failures:
        log(f"{failures} of the neighbour's requests failed")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
