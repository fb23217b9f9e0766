"""`make bench`: run every benchmark, print its table, and write the figures to the docs.

    .venv/bin/python bench/run.py                          # every benchmark, the published sizes
    .venv/bin/python bench/run.py --only force_update      # one benchmark (repeatable)
    .venv/bin/python bench/run.py --quick --output FILE    # small sizes, a smoke run
    .venv/bin/python bench/run.py --sqlite-only            # no PostgreSQL
    .venv/bin/python bench/run.py --postgres SERVER_URL    # this server instead of a new cluster

Every benchmark runs on both databases: on SQLite, then on PostgreSQL. Unless ``--postgres``
names a server (a role that may create databases), a throwaway PostgreSQL cluster is started
first, as the CI script starts one (initdb into a temporary folder, a free port on 127.0.0.1),
and stopped and removed at the end, also on Ctrl-C or a failure (bench/postgres.py). Without
PostgreSQL's binaries the run says so in one line and measures SQLite only.

Each benchmark is a script in bench/ run in its own process (so its peak memory is its own) as
``python bench/NAME.py --markdown [--quick] [--postgres SERVER_URL]``: it prints its result
section as markdown on standard output and its progress on standard error (bench/README.md). Each
section is shown in the terminal as it comes, then written into docs/benchmarks.md between the
markers ``<!-- bench:results:start -->`` and ``<!-- bench:results:end -->``, after a description
of the machine; the rest of the file, written by hand, is left as it is. With ``--only``, the
sections of the other benchmarks (and of a database not measured now) are kept from the last
run. ``--quick`` figures are not published: the docs are written only when ``--output`` names a
file.

The exit status is 1 when a benchmark failed (its script exited with a status other than 0, for
instance because a target was missed); its section is still written, saying so.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from rich.console import Console
from rich.markdown import Markdown

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.postgres import server_version, throwaway_cluster

BENCH_DIR = Path(__file__).resolve().parent
REPOSITORY = BENCH_DIR.parent
DOCS = REPOSITORY / "docs" / "benchmarks.md"
RESULTS_START = "<!-- bench:results:start -->"
RESULTS_END = "<!-- bench:results:end -->"
LIBRARIES = ("strawberry-graphql", "starlette", "uvicorn", "sqlalchemy", "httpx", "psycopg")
DATABASES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str

    @property
    def script(self) -> Path:
        return BENCH_DIR / f"{self.name}.py"

    def key(self, database: str = "sqlite") -> str:
        """The section's name in the docs: the benchmark's, with ``:postgresql`` on PostgreSQL."""
        return self.name if database == "sqlite" else f"{self.name}:{database}"

    def markers(self, database: str = "sqlite") -> tuple[str, str]:
        key = self.key(database)
        return f"<!-- bench:{key}:start -->", f"<!-- bench:{key}:end -->"


# In the order the docs show them.
BENCHMARKS = (
    Benchmark("dashboard", "Dashboard query against a hand-written endpoint and the raw anchor"),
    Benchmark("conditional", "Dashboard query: plain, persisted, and 304"),
    Benchmark("oneroster_csv_sync", "Full OneRoster CSV sync and re-syncs"),
    Benchmark("delta_sync", "A 1% delta against the full sync"),
    Benchmark("force_update", "Concurrent Force License Update"),
    Benchmark("neighbour", "Neighbour safety: one token floods, another district's dashboard"),
    Benchmark("heavy_reads", "Heavy reads of a 1,000,000-student district, and the export"),
    Benchmark("fleet", "Fleet: nightly syncs while other districts read their tab"),
    Benchmark("live", "Live updates: 10,000 subscriptions on one worker"),
)

console = Console()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_benchmark(
    benchmark: Benchmark, *, quick: bool, postgres: str | None = None
) -> tuple[str, bool]:
    """The benchmark's section (with how and when it ran), and whether it succeeded; on the
    PostgreSQL server ``postgres`` names, else on SQLite."""
    command = [sys.executable, f"bench/{benchmark.script.name}", "--markdown"]
    if quick:
        command.append("--quick")
    if postgres:
        command += ["--postgres", postgres]
    # The server's URL carries a password: it is shown as URL.
    shown = " ".join(["python", *command[1:]]).replace(postgres or "\0", "URL")
    load = os.getloadavg()[0]
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    log(f"== {benchmark.name}: {shown}")
    done = subprocess.run(command, cwd=REPOSITORY, stdout=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - started
    database = "PostgreSQL" if postgres else "SQLite"
    text = done.stdout.strip() or f"### {benchmark.title}, {database}\n\nNo result was printed."
    footer = (
        f"_`{shown}`, run {started_at:%Y-%m-%d %H:%M} UTC: "
        f"{seconds:,.0f} s in all, load average {load:.1f} at the start._"
    )
    if done.returncode != 0:
        footer += (
            f"\n\n**The benchmark failed** (exit status {done.returncode}); "
            "its messages went to standard error."
        )
    return f"{text}\n\n{footer}", done.returncode == 0


def machine_description(*, quick: bool, postgres: str | None = None) -> str:
    """What the figures were measured on, as a markdown list."""
    try:
        system = platform.freedesktop_os_release()["PRETTY_NAME"]
    except (OSError, KeyError):
        system = platform.system()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    libraries = ", ".join(f"{name} {metadata.version(name)}" for name in LIBRARIES)
    sizes = " with `--quick` sizes (a smoke run, not figures to compare)" if quick else ""
    return "\n".join(
        [
            f"Latest run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC{sizes}, on",
            "",
            f"- CPU: {cpu_model()}, {os.cpu_count()} cores",
            f"- memory: {memory:,.0f} GiB",
            f"- system: {system}, kernel {platform.release()} ({platform.machine()})",
            f"- Python {platform.python_version()}, {databases_used(postgres)}",
            f"- libraries: {libraries}",
        ]
    )


def databases_used(postgres: str | None) -> str:
    if postgres is None:
        return (
            f"SQLite {sqlite3.sqlite_version} (this run measured SQLite only; a PostgreSQL "
            "section below, if any, is from an earlier run)"
        )
    return (
        f"SQLite {sqlite3.sqlite_version} and PostgreSQL {server_version(postgres)} (each "
        "benchmark ran on both, PostgreSQL on the same machine with fsync off, as in CI)"
    )


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sections_in(block: str) -> dict[str, str]:
    """The sections of an earlier run, by benchmark name, from the generated block."""
    found = {}
    for benchmark in BENCHMARKS:
        for database in DATABASES:
            start, end = benchmark.markers(database)
            match = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), block, re.DOTALL)
            if match:
                found[benchmark.key(database)] = match.group(1)
    return found


def rewrite(document: str, machine: str, sections: dict[str, str]) -> str:
    """``document`` with its generated block holding ``machine`` and the sections (by
    ``Benchmark.key``), in order; a section not run now keeps its text from the block it had."""
    before, start, rest = document.partition(RESULTS_START)
    old_block, end, after = rest.partition(RESULTS_END)
    if not start or not end:
        raise ValueError(f"the markers {RESULTS_START} and {RESULTS_END} are missing")
    kept = sections_in(old_block)
    parts = [
        "<!-- Written by `make bench` (bench/run.py): what is between these markers is "
        "replaced on every run. -->",
        machine,
    ]
    for benchmark in BENCHMARKS:
        for database in DATABASES:
            key = benchmark.key(database)
            text = sections.get(key, kept.get(key))
            if text is not None:
                start_marker, end_marker = benchmark.markers(database)
                parts.append(f"{start_marker}\n{text.strip()}\n{end_marker}")
    return f"{before}{RESULTS_START}\n" + "\n\n".join(parts) + f"\n{RESULTS_END}{after}"


@contextmanager
def postgres_server(args: argparse.Namespace) -> Iterator[str | None]:
    """The PostgreSQL server to measure on: the one named, a throwaway cluster, or none."""
    if args.sqlite_only:
        yield None
    elif args.postgres:
        yield args.postgres
    else:
        with throwaway_cluster() as url:
            yield url


def stop_on_sigterm() -> None:
    """A SIGTERM unwinds like Ctrl-C, so the cluster is stopped and its folder removed."""

    def interrupt(_signal: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main() -> None:
    names = [benchmark.name for benchmark in BENCHMARKS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", action="append", choices=names, metavar="NAME", help=f"one of {names}"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--output",
        type=Path,
        help="the file to write the figures into (default: docs/benchmarks.md; none with --quick)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sqlite-only", action="store_true", help="no PostgreSQL runs")
    where.add_argument(
        "--postgres",
        metavar="SERVER_URL",
        help="measure on this PostgreSQL server (a role that may create databases) instead of "
        "a throwaway cluster",
    )
    args = parser.parse_args()
    output = args.output or (None if args.quick else DOCS)
    if output is not None and RESULTS_START not in output.read_text(encoding="utf-8"):
        parser.error(f"{output} has no {RESULTS_START} marker to write the figures after")

    stop_on_sigterm()
    sections: dict[str, str] = {}
    failed = []
    with postgres_server(args) as postgres:
        machine = machine_description(quick=args.quick, postgres=postgres)
        console.print(Markdown(machine))
        for benchmark in BENCHMARKS:
            if args.only and benchmark.name not in args.only:
                continue
            if not benchmark.script.exists():
                log(
                    f"== {benchmark.name}: skipped, bench/{benchmark.script.name} does not exist yet."
                )
                continue
            servers: list[tuple[str, str | None]] = [("sqlite", None)]
            if postgres:
                servers.append(("postgresql", postgres))
            for database, server in servers:
                section, succeeded = run_benchmark(benchmark, quick=args.quick, postgres=server)
                console.print(Markdown(section))
                sections[benchmark.key(database)] = section
                if not succeeded:
                    failed.append(benchmark.key(database))

    if output is None:
        log("--quick: the figures are not written anywhere (name a file with --output).")
    elif sections:
        document = output.read_text(encoding="utf-8")
        output.write_text(rewrite(document, machine, sections), encoding="utf-8")
        log(f"Wrote the figures to {output}.")
    if failed:
        log(f"Failed: {', '.join(failed)}.")
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        log("Interrupted: nothing was written (a throwaway PostgreSQL cluster was removed).")
        sys.exit(130)
