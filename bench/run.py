"""`make bench`: run every benchmark, print its table, and write the figures to the docs.

    .venv/bin/python bench/run.py                          # every benchmark, the published sizes
    .venv/bin/python bench/run.py --only force_update      # one benchmark (repeatable)
    .venv/bin/python bench/run.py --quick --output FILE    # small sizes, a smoke run

Each benchmark is a script in bench/ run in its own process (so its peak memory is its own) as
``python bench/NAME.py --markdown [--quick]``: it prints its result section as markdown on
standard output and its progress on standard error (bench/README.md). Each section is shown in
the terminal as it comes, then written into docs/benchmarks.md between the markers
``<!-- bench:results:start -->`` and ``<!-- bench:results:end -->``, after a description of the
machine; the rest of the file, written by hand, is left as it is. With ``--only``, the sections
of the other benchmarks are kept from the last run. ``--quick`` figures are not published: the
docs are written only when ``--output`` names a file.

The exit status is 1 when a benchmark failed (its script exited with a status other than 0, for
instance because a target was missed); its section is still written, saying so.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from rich.console import Console
from rich.markdown import Markdown

BENCH_DIR = Path(__file__).resolve().parent
REPOSITORY = BENCH_DIR.parent
DOCS = REPOSITORY / "docs" / "benchmarks.md"
RESULTS_START = "<!-- bench:results:start -->"
RESULTS_END = "<!-- bench:results:end -->"
LIBRARIES = ("strawberry-graphql", "starlette", "uvicorn", "sqlalchemy", "httpx")


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str

    @property
    def script(self) -> Path:
        return BENCH_DIR / f"{self.name}.py"

    def markers(self) -> tuple[str, str]:
        return f"<!-- bench:{self.name}:start -->", f"<!-- bench:{self.name}:end -->"


# In the order the docs show them.
BENCHMARKS = (
    Benchmark("dashboard", "Dashboard query: GraphQL against a bare Starlette endpoint"),
    Benchmark("conditional", "Dashboard query: plain, persisted, and 304"),
    Benchmark("oneroster_csv_sync", "Full OneRoster CSV sync and re-syncs"),
    Benchmark("delta_sync", "A 1% delta against the full sync"),
    Benchmark("force_update", "Concurrent Force License Update"),
    Benchmark("neighbour", "Neighbour safety: one token floods, another district's dashboard"),
)

console = Console()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_benchmark(benchmark: Benchmark, *, quick: bool) -> tuple[str, bool]:
    """The benchmark's section (with how and when it ran), and whether it succeeded."""
    command = [sys.executable, f"bench/{benchmark.script.name}", "--markdown"]
    if quick:
        command.append("--quick")
    load = os.getloadavg()[0]
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    log(f"== {benchmark.name}: {' '.join(['python', *command[1:]])}")
    done = subprocess.run(command, cwd=REPOSITORY, stdout=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - started
    text = done.stdout.strip() or f"### {benchmark.title}\n\nNo result was printed."
    footer = (
        f"_`python {' '.join(command[1:])}`, run {started_at:%Y-%m-%d %H:%M} UTC: "
        f"{seconds:,.0f} s in all, load average {load:.1f} at the start._"
    )
    if done.returncode != 0:
        footer += (
            f"\n\n**The benchmark failed** (exit status {done.returncode}); "
            "its messages went to standard error."
        )
    return f"{text}\n\n{footer}", done.returncode == 0


def machine_description(*, quick: bool) -> str:
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
            f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version} (every "
            "benchmark uses a SQLite database; PostgreSQL is not used)",
            f"- libraries: {libraries}",
        ]
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
        start, end = benchmark.markers()
        match = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), block, re.DOTALL)
        if match:
            found[benchmark.name] = match.group(1)
    return found


def rewrite(document: str, machine: str, sections: dict[str, str]) -> str:
    """``document`` with its generated block holding ``machine`` and the sections, in order;
    a benchmark not run now keeps its section from the block it had."""
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
        text = sections.get(benchmark.name, kept.get(benchmark.name))
        if text is not None:
            start_marker, end_marker = benchmark.markers()
            parts.append(f"{start_marker}\n{text.strip()}\n{end_marker}")
    return f"{before}{RESULTS_START}\n" + "\n\n".join(parts) + f"\n{RESULTS_END}{after}"


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
    args = parser.parse_args()
    output = args.output or (None if args.quick else DOCS)
    if output is not None and RESULTS_START not in output.read_text(encoding="utf-8"):
        parser.error(f"{output} has no {RESULTS_START} marker to write the figures after")

    machine = machine_description(quick=args.quick)
    console.print(Markdown(machine))
    sections: dict[str, str] = {}
    failed = []
    for benchmark in BENCHMARKS:
        if args.only and benchmark.name not in args.only:
            continue
        if not benchmark.script.exists():
            log(f"== {benchmark.name}: skipped, bench/{benchmark.script.name} does not exist yet.")
            continue
        section, succeeded = run_benchmark(benchmark, quick=args.quick)
        console.print(Markdown(section))
        sections[benchmark.name] = section
        if not succeeded:
            failed.append(benchmark.name)

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
    main()
