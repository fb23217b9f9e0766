"""`make bench` keeps working: each benchmark runs at its --quick sizes through bench/run.py.

The figures go into a copy of docs/benchmarks.md (``--output``); the real page is never written.
What is checked is what a reader of that page relies on: the machine is described, each
benchmark's section holds a table between its markers, and the hand-written text is untouched.

On SQLite only, unless LICENSING_TEST_DATABASE_URL names a PostgreSQL server: then each benchmark
runs on that server too (``--postgres``; no cluster is started) and its PostgreSQL section is
checked the same way.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run import BENCHMARKS, DOCS, REPOSITORY, RESULTS_END, RESULTS_START, rewrite
from tests.utils.databases import SERVER_URL

# Read at import, like the database's URL: the autouse fixture clears every LICENSING_* variable
# before a test runs.
REQUIRE_WRK = bool(os.environ.get("LICENSING_REQUIRE_WRK"))

# Starts servers and loads them: one benchmark at a time, on one xdist worker (handed out first:
# tests/conftest.py).
pytestmark = pytest.mark.xdist_group("bench")


def postgres_server() -> str | None:
    return SERVER_URL if SERVER_URL.startswith("postgresql") else None


def run_bench(*arguments: str) -> subprocess.CompletedProcess[str]:
    server = postgres_server()
    where = ["--postgres", server] if server else ["--sqlite-only"]
    return subprocess.run(
        [sys.executable, "bench/run.py", *arguments, *where],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=300 if server else 120,
        check=False,
    )


def outside_results(document: str) -> str:
    before, _, rest = document.partition(RESULTS_START)
    return before + rest.partition(RESULTS_END)[2]


def generated_block(document: str) -> str:
    return document.partition(RESULTS_START)[2].partition(RESULTS_END)[0]


@pytest.mark.parametrize("benchmark", BENCHMARKS, ids=lambda benchmark: benchmark.name)
def test_quick_run_prints_the_table_and_fills_the_markers(benchmark, tmp_path: Path) -> None:
    if not benchmark.script.exists():
        pytest.skip(f"bench/{benchmark.script.name} is not written yet")
    if benchmark.name in ("dashboard", "conditional") and shutil.which("wrk") is None:
        # CI installs Debian's wrk (.ci/run) and sets the variable, so there it fails instead.
        if REQUIRE_WRK:
            pytest.fail("wrk is not installed, and LICENSING_REQUIRE_WRK is set")
        pytest.skip(f"the {benchmark.name} benchmark needs Debian's wrk")
    published = DOCS.read_bytes()
    output = tmp_path / "benchmarks.md"
    shutil.copyfile(DOCS, output)

    done = run_bench("--quick", "--only", benchmark.name, "--output", str(output))

    assert done.returncode == 0, done.stderr[-4000:]
    written = output.read_text(encoding="utf-8")
    block = generated_block(written)
    assert re.search(r"^- CPU: .+, \d+ cores$", block, re.MULTILINE), block[:2000]
    databases = ["sqlite", "postgresql"] if postgres_server() else ["sqlite"]
    for database in databases:
        start, end = benchmark.markers(database)
        section = block.partition(start)[2].partition(end)[0]
        table_rows = [line for line in section.splitlines() if line.startswith("| ")]
        assert len(table_rows) >= 3, section  # header, alignment and at least one row of figures
        heading = re.search(r"^### (.+)$", section, re.MULTILINE)
        assert heading is not None, section
        assert ("PostgreSQL" in heading.group(1)) == (database == "postgresql"), heading.group(1)
        # The table was shown in the terminal too (rich may wrap a long heading).
        assert heading.group(1).split(",")[0] in done.stdout
    assert outside_results(written) == outside_results(DOCS.read_text(encoding="utf-8"))
    assert DOCS.read_bytes() == published


def test_a_page_without_the_markers_is_refused_untouched(tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"
    output.write_text("# Benchmarks\n\nNo markers here.\n", encoding="utf-8")

    done = run_bench("--quick", "--only", "force_update", "--output", str(output))

    assert done.returncode == 2
    assert RESULTS_START in done.stderr
    assert output.read_text(encoding="utf-8") == "# Benchmarks\n\nNo markers here.\n"


def test_a_run_of_one_benchmark_keeps_the_other_sections() -> None:
    sync, force = (
        next(benchmark for benchmark in BENCHMARKS if benchmark.name == name)
        for name in ("oneroster_csv_sync", "force_update")
    )
    old_sections = "\n".join(
        f"{benchmark.markers()[0]}\n### {benchmark.title}\n\nold figures\n{benchmark.markers()[1]}"
        for benchmark in (sync, force)
    )
    document = f"# Page\n\nBy hand.\n\n{RESULTS_START}\nold machine\n{old_sections}\n{RESULTS_END}\n\nMore by hand.\n"

    rewritten = rewrite(
        document,
        "new machine",
        {
            "force_update": "### Force\n\nnew figures",
            force.key("postgresql"): "### Force, PostgreSQL\n\nnew figures on PostgreSQL",
        },
    )

    block = generated_block(rewritten)
    assert "new machine" in block and "old machine" not in block
    assert "new figures" in block
    assert block.count("old figures") == 1
    # The PostgreSQL section comes right after the same benchmark's SQLite section.
    force_start = block.index(force.markers()[0])
    assert force_start < block.index(force.markers("postgresql")[0])
    assert "new figures on PostgreSQL" in block
    assert block.index(sync.markers()[0]) < block.index(force.markers()[0])
    assert rewritten.startswith("# Page\n\nBy hand.\n\n")
    assert rewritten.endswith(f"{RESULTS_END}\n\nMore by hand.\n")


def test_the_benchmarks_run_in_their_own_xdist_group(request: pytest.FixtureRequest) -> None:
    # pytest-xdist marks a grouped test by its id, and a pytest release it does not know can
    # leave the mark off without a word: the benchmarks would then load the machine all at once,
    # side by side (pytest-dev/pytest-xdist#1386).
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("checked under xdist's --dist loadgroup, as `make test` runs the suite")
    assert request.node.nodeid.endswith("@bench"), request.node.nodeid
