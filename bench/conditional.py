"""Benchmark: the dashboard query sent plainly, as a persisted query, and answered 304.

    .venv/bin/python bench/conditional.py [--students 1000] [--workers 1] [--markdown]
    .venv/bin/python bench/conditional.py --postgres postgresql+psycopg://USER:PASSWORD@HOST/postgres

It builds the same district as bench/dashboard.py (a SQLite file, or with ``--postgres`` a new
database on that server), serves it with ``licensing serve`` and with the raw anchor
(``bench/raw_anchor.py``: Starlette and the driver alone, one statement), with the same uvicorn
settings (1 worker on SQLite, 4 on PostgreSQL), and sends the dashboard query (bench/dashboard.py's
DASHBOARD_QUERY) five ways, from wrk, in alternating rounds with the raw anchor's answer:

- plain POST: the document's text in a JSON body, as before persisted queries;
- plain GET: the text in the query string;
- persisted POST and persisted GET: the document's SHA-256 alone (registered once first), so
  the server neither parses nor validates it;
- GET 304: the hash with ``If-None-Match`` holding the current ETag: the server reads the
  district's version and answers ``304 Not Modified`` without running the query.

A response with another status than the one expected (200, or 304 for the last), or with GraphQL
``errors``, is a failure. It prints requests per second, p50 and p99 latency of each, and each
way's throughput against plain POST and against the raw anchor (SPEC section 8: a 304 answer and
a persisted query each >= 0.8x the raw anchor).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from bench.dashboard import (  # noqa: E402
    DASHBOARD_QUERY,
    QUICK_AT_LEAST_ANSWERS,
    QUICK_SECONDS,
    WRK_COUNTING,
    Measurement,
    Server,
    answers_at_once,
    build_database,
    free_port,
    log,
    median_measurement,
    run_wrk,
    running_servers,
)
from bench.dashboard import WRK_SCRIPT as JSON_WRK_SCRIPT  # noqa: E402
from bench.postgres import database_name, default_workers, fresh_database  # noqa: E402
from bench.tables import show  # noqa: E402

RAW = "raw anchor"
TARGET_RAW_RATIO = 0.8
# The ways SPEC section 8 sets a target for against the raw anchor.
TARGETED = ("persisted POST", "persisted GET", "GET 304")

WRK_SCRIPT = (
    """
wrk.method = "{method}"
wrk.path = [==[{path}]==]
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {secret}"
{extra_header}

"""
    + WRK_COUNTING
)


@dataclass(frozen=True)
class Variant:
    name: str
    method: str
    path: str
    body: str
    status: int = 200
    if_none_match: str | None = None

    def script(self, secret: str) -> str:
        extra = (
            f'wrk.headers["If-None-Match"] = [==[{self.if_none_match}]==]'
            if self.if_none_match
            else ""
        )
        return WRK_SCRIPT.format(
            method=self.method,
            path=self.path,
            body=self.body,
            secret=secret,
            status=self.status,
            extra_header=extra,
        )


def variants(base_url: str, secret: str) -> list[Variant]:
    """The five ways to send the query; registers the document and reads its current ETag."""
    digest = hashlib.sha256(DASHBOARD_QUERY.encode("utf-8")).hexdigest()
    extensions = json.dumps({"persistedQuery": {"version": 1, "sha256Hash": digest}})
    headers = {"Authorization": f"Bearer {secret}"}
    registered = httpx.post(
        f"{base_url}/graphql",
        json={"query": DASHBOARD_QUERY, "extensions": json.loads(extensions)},
        headers=headers,
    )
    if registered.status_code != 200 or "errors" in registered.json():
        raise SystemExit(f"Registering the dashboard query failed: {registered.text}")
    persisted_path = "/graphql?" + urlencode({"extensions": extensions})
    answer = httpx.get(f"{base_url}{persisted_path}", headers=headers)
    etag = answer.headers.get("etag")
    if answer.status_code != 200 or etag is None:
        raise SystemExit(f"The persisted GET carried no ETag: {answer.status_code} {answer.text}")
    return [
        Variant("plain POST", "POST", "/graphql", json.dumps({"query": DASHBOARD_QUERY})),
        Variant("plain GET", "GET", "/graphql?" + urlencode({"query": DASHBOARD_QUERY}), ""),
        Variant(
            "persisted POST", "POST", "/graphql", json.dumps({"extensions": json.loads(extensions)})
        ),
        Variant("persisted GET", "GET", persisted_path, ""),
        Variant("GET 304", "GET", persisted_path, "", status=304, if_none_match=etag),
    ]


def measure(arguments: argparse.Namespace) -> dict[str, Measurement]:
    data_dir = Path(tempfile.mkdtemp(prefix="licensing-bench-conditional-"))
    try:
        with contextlib.ExitStack() as stack:
            database_url = (
                stack.enter_context(fresh_database(arguments.postgres))
                if arguments.postgres
                else ""
            )
            return measure_ways(arguments, data_dir, database_url)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def measure_ways(
    arguments: argparse.Namespace, data_dir: Path, database_url: str
) -> dict[str, Measurement]:
    log(f"{arguments.students:,} students: building the {database_name(database_url)} database")
    secret = build_database(data_dir, arguments.students, database_url)
    port, raw_port = free_port(), free_port()
    base_url = f"http://127.0.0.1:{port}"
    raw_url = f"http://127.0.0.1:{raw_port}/dashboard"
    workers = str(arguments.workers)
    licensing = [str(Path(sys.executable).with_name("licensing"))]
    command = [*licensing, "serve", "--port", str(port), "--workers", workers]
    raw_command = [
        *[sys.executable, "-m", "app.uvicorn_compat", "bench.raw_anchor:create_app"],
        *["--host", "127.0.0.1", "--port", str(raw_port), "--workers", workers],
    ]
    rounds: dict[str, list[Measurement]] = {}
    servers = [Server(command, f"{base_url}/healthz"), Server(raw_command, raw_url)]
    with running_servers(servers, data_dir, database_url=database_url):
        ways = variants(base_url, secret)
        # Every worker of both servers answers before the load (see answers_at_once).
        headers = {"Authorization": f"Bearer {secret}"}
        first = answers_at_once(
            "POST",
            f"{base_url}/graphql",
            arguments.connections,
            json={"query": DASHBOARD_QUERY},
            headers=headers,
        )
        first += answers_at_once("POST", raw_url, arguments.connections, headers=headers)
        for answer in first:
            if answer.status_code != 200 or "errors" in answer.json():
                raise SystemExit(f"{answer.url} answered {answer.status_code}: {answer.text}")
        targets: dict[str, tuple[str, Path]] = {}
        raw_script = data_dir / "raw.lua"
        raw_script.write_text(JSON_WRK_SCRIPT.format(body="", secret=secret, status=200))
        targets[RAW] = (raw_url, raw_script)
        for number, variant in enumerate(ways):
            script = data_dir / f"variant-{number}.lua"
            script.write_text(variant.script(secret))
            targets[variant.name] = (base_url, script)
        load = {"connections": arguments.connections}
        if arguments.warm_up:
            log("warming up")
            for url, script in targets.values():
                run_wrk(url, script, seconds=arguments.warm_up, **load)
        for round_number in range(1, arguments.rounds + 1):
            log(f"round {round_number} of {arguments.rounds}")
            for name, (url, script) in targets.items():
                rounds.setdefault(name, []).append(
                    run_wrk(
                        url, script, seconds=arguments.seconds, at_least=arguments.at_least, **load
                    )
                )
    return {name: median_measurement(measured) for name, measured in rounds.items()}


def report(results: dict[str, Measurement], arguments: argparse.Namespace) -> str:
    plain = results["plain POST"].requests_per_second
    raw = results[RAW].requests_per_second
    database = database_name(arguments.postgres)
    lines = [
        f"### Dashboard query: plain, persisted, and 304, {database}",
        "",
        f"`.venv/bin/python bench/conditional.py{' --postgres URL' if arguments.postgres else ''}`"
        f": {database}, one district of {arguments.students:,} students, "
        f"{arguments.connections} connections from wrk, {arguments.workers} uvicorn worker(s) "
        f"for each server, {arguments.rounds} alternating rounds of {arguments.seconds:g} s per "
        "way (medians shown). Raw anchor: Starlette and the driver alone, one statement "
        "(`bench/raw_anchor.py`), the same numbers as JSON. Persisted: the SHA-256 alone, the "
        "document registered once. GET 304: the hash with the current ETag in If-None-Match; "
        "the query does not run.",
        "",
        "| way | requests/s | against plain POST | against raw | p50 ms | p99 ms | failures |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def against(measured: Measurement, whole: float) -> str:
        # A machine too busy to answer one request in the round has no ratio to show.
        return f"{measured.requests_per_second / whole:.2f}x" if whole else "n/a"

    for name, measured in results.items():
        lines.append(
            f"| {name} | {measured.requests_per_second:,.0f} "
            f"| {'' if name == RAW else against(measured, plain)} "
            f"| {'' if name == RAW else against(measured, raw)} | {measured.p50_ms:.1f} "
            f"| {measured.p99_ms:.1f} | {measured.failures} |"
        )
    verdicts = []
    for name in TARGETED:
        share = results[name].requests_per_second / raw if raw else 0.0
        verdicts.append(
            f"{name} {share:.2f}x ({'met' if share >= TARGET_RAW_RATIO else 'NOT met'})"
        )
    lines += [
        "",
        f"Target (SPEC section 8): a 304 answer and a persisted query each >= {TARGET_RAW_RATIO}x "
        f"the raw anchor's requests per second: {'; '.join(verdicts)}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, help="the district's size")
    parser.add_argument(
        "--workers", type=int, help="uvicorn workers per server (default 1, 4 on PostgreSQL)"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--postgres",
        metavar="SERVER_URL",
        help="measure on PostgreSQL: a new database on this server (a role that may create one)",
    )
    parser.add_argument("--seconds", type=float, help="seconds of load per round and way")
    parser.add_argument("--rounds", type=int, help="alternating rounds")
    parser.add_argument(
        "--quick", action="store_true", help="a small district, one short round, no warm-up"
    )
    parser.add_argument(
        "--markdown", action="store_true", help="Print the result section as markdown."
    )
    arguments = parser.parse_args()
    arguments.students = arguments.students or (200 if arguments.quick else 1_000)
    arguments.seconds = arguments.seconds or (QUICK_SECONDS if arguments.quick else 5)
    arguments.rounds = arguments.rounds or (1 if arguments.quick else 3)
    # A smoke run's figures are not compared: the burst of answers before the load warms the
    # servers enough.
    arguments.warm_up = 0 if arguments.quick else 1
    arguments.at_least = QUICK_AT_LEAST_ANSWERS if arguments.quick else 0
    arguments.workers = arguments.workers or default_workers(
        arguments.postgres, quick=arguments.quick
    )
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed for the load: install Debian's package 'wrk'.")
    for name in [name for name in os.environ if name.startswith("LICENSING_")]:
        del os.environ[name]
    results = measure(arguments)
    show(report(results, arguments), as_markdown=arguments.markdown)
    failures = sum(measured.failures for measured in results.values())
    if failures:
        log(f"{failures} requests failed")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
