"""Benchmark: the dashboard query sent plainly, as a persisted query, and answered 304.

    .venv/bin/python bench/conditional.py [--students 1000] [--workers 1] [--markdown]

It builds the same district as bench/dashboard.py, serves it with ``licensing serve`` and sends
the dashboard query (bench/dashboard.py's DASHBOARD_QUERY) five ways, from wrk, in alternating
rounds against the same server:

- plain POST: the document's text in a JSON body, as before persisted queries;
- plain GET: the text in the query string;
- persisted POST and persisted GET: the document's SHA-256 alone (registered once first), so
  the server neither parses nor validates it;
- GET 304: the hash with ``If-None-Match`` holding the current ETag: the server reads the
  district's version and answers ``304 Not Modified`` without running the query.

A response with another status than the one expected (200, or 304 for the last), or with GraphQL
``errors``, is a failure. It prints requests per second, p50 and p99 latency of each.
"""

from __future__ import annotations

import argparse
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
    WRK_COUNTING,
    Measurement,
    build_database,
    free_port,
    log,
    median_measurement,
    run_wrk,
    running_server,
)
from bench.tables import show  # noqa: E402

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
        log(f"{arguments.students:,} students: building the database")
        secret = build_database(data_dir, arguments.students)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        licensing = [str(Path(sys.executable).with_name("licensing"))]
        command = [*licensing, "serve", "--port", str(port), "--workers", str(arguments.workers)]
        rounds: dict[str, list[Measurement]] = {}
        with running_server(command, data_dir, f"{base_url}/healthz"):
            ways = variants(base_url, secret)
            scripts = {}
            for number, variant in enumerate(ways):
                script = data_dir / f"variant-{number}.lua"
                script.write_text(variant.script(secret))
                scripts[variant.name] = script
            load = {"connections": arguments.connections}
            log("warming up")
            for variant in ways:
                run_wrk(base_url, scripts[variant.name], seconds=1, **load)
            for round_number in range(1, arguments.rounds + 1):
                log(f"round {round_number} of {arguments.rounds}")
                for variant in ways:
                    rounds.setdefault(variant.name, []).append(
                        run_wrk(base_url, scripts[variant.name], seconds=arguments.seconds, **load)
                    )
        return {name: median_measurement(measured) for name, measured in rounds.items()}
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def report(results: dict[str, Measurement], arguments: argparse.Namespace) -> str:
    plain = results["plain POST"].requests_per_second
    lines = [
        "### Dashboard query: plain, persisted, and 304",
        "",
        f"`.venv/bin/python bench/conditional.py`: one district of {arguments.students:,} "
        f"students, {arguments.connections} connections from wrk, {arguments.workers} uvicorn "
        f"worker(s), SQLite, {arguments.rounds} alternating rounds of {arguments.seconds:g} s per "
        "way (medians shown). Persisted: the SHA-256 alone, the document registered once. "
        "GET 304: the hash with the current ETag in If-None-Match; the query does not run.",
        "",
        "| way | requests/s | against plain POST | p50 ms | p99 ms | failures |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, measured in results.items():
        # A machine too busy to answer one plain request in the round has no ratio to show.
        ratio = f"{measured.requests_per_second / plain:.2f}x" if plain else "n/a"
        lines.append(
            f"| {name} | {measured.requests_per_second:,.0f} "
            f"| {ratio} | {measured.p50_ms:.1f} "
            f"| {measured.p99_ms:.1f} | {measured.failures} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, help="the district's size")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, help="seconds of load per round and way")
    parser.add_argument("--rounds", type=int, help="alternating rounds")
    parser.add_argument("--quick", action="store_true", help="a small district, one short round")
    parser.add_argument(
        "--markdown", action="store_true", help="Print the result section as markdown."
    )
    arguments = parser.parse_args()
    arguments.students = arguments.students or (200 if arguments.quick else 1_000)
    arguments.seconds = arguments.seconds or (1 if arguments.quick else 5)
    arguments.rounds = arguments.rounds or (1 if arguments.quick else 3)
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
