# `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

# Python keeps its bytecode cache (__pycache__/, ignored by git) even where the environment turns
# it off: without it each test worker, and each server or command a test starts, compiles the
# project and its tests again (measured on 2 cores: 12.4 s to collect the suite, 5.5 s with it).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test test-postgres screenshots lint format schema release-schema bench clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(INSTALLED)

# ariadne-codegen (the typed client of docs/integrators.md) pins graphql-core below 3.3, which the
# service needs, so it lives in an environment of its own; tests/docs runs it from there.
CODEGEN_VENV := .venv-codegen
CODEGEN_INSTALLED := $(CODEGEN_VENV)/.installed

$(CODEGEN_INSTALLED): docs/examples/ariadne-codegen.toml
	$(PYTHON) -m venv $(CODEGEN_VENV)
	$(CODEGEN_VENV)/bin/pip install --quiet 'ariadne-codegen>=0.19,<0.20'
	touch $(CODEGEN_INSTALLED)

run: $(INSTALLED)
	$(BIN)/licensing demo
	$(BIN)/licensing serve

# The suite runs on one more worker than there are cores: many tests wait on a server process, a
# socket or a subprocess, and the extra worker fills that time (measured on 2 cores: 222 s with 3
# workers, 245 s with 2, 248 s with 4). The benchmarks' smoke runs share one worker.
# The slowest tests are listed at the end of each run, to show where the time goes.
PYTEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print(len(os.sched_getaffinity(0)) + 1)")
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist loadgroup -m "not servers" --durations=25
PYTEST_SERVERS := -m servers
# The tests' temporary files (each test's database, data folder, rosters, the browser's profile)
# go to memory, /dev/shm, when it has 2 GiB free; elsewhere to the system's temporary folder.
# Measured on 2 cores, alternating: the parallel run took 1 to 11 s less in 5 pairs of runs, and
# 0.5 s less in a sixth, on a busier machine. TEST_TMPDIR= (empty) keeps the system's.
TEST_TMPDIR ?= $(shell $(PYTHON) -c "import os, shutil; shm = '/dev/shm'; print(shm if os.path.isdir(shm) and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= 2 << 30 else '')")
PYTEST_ENV := $(if $(TEST_TMPDIR),TMPDIR=$(TEST_TMPDIR) )

# The tests that start several server processes and load them (marker "servers") measure latency
# under load: a test competing with them for the processor on equal terms made their SQLite
# writes wait out the busy timeout. They spend most of their time waiting, though (about 70% of
# it idle on 2 cores). So they run beside the parallel run, which runs at a lower priority (nice)
# and takes only the processor time they leave. Their report is printed after the parallel
# run's; the target fails if either fails. $(1): variables for both runs.
# bash, not sh: only bash gives a job started in the background (with `trap - INT`) back its
# Ctrl-C, so that an interrupted `make test` stops both runs, each cleaning up its servers.
SHELL := /bin/bash
define BOTH_STAGES
	@servers_log=$$(mktemp); trap 'rm -f "$$servers_log"' EXIT; \
	echo '$(1)$(PYTEST_ENV)$(BIN)/pytest $(PYTEST_SERVERS) &'; \
	(trap - INT; exec env $(1)$(PYTEST_ENV)$(BIN)/pytest $(PYTEST_SERVERS)) > "$$servers_log" 2>&1 & \
	servers=$$!; \
	echo '$(1)$(PYTEST_ENV)nice -n 10 $(BIN)/pytest $(PYTEST_PARALLEL)'; \
	env $(1)$(PYTEST_ENV)nice -n 10 $(BIN)/pytest $(PYTEST_PARALLEL); parallel_status=$$?; \
	wait $$servers; servers_status=$$?; \
	echo "== the tests of several server processes, run beside the above (marker servers):"; \
	cat "$$servers_log"; \
	[ $$parallel_status -eq 0 ] && [ $$servers_status -eq 0 ]
endef

# mypy runs as a test (tests/architecture/test_types.py), beside the others.
test: $(INSTALLED) $(CODEGEN_INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(call BOTH_STAGES,)

# The suite again on PostgreSQL: LICENSING_TEST_DATABASE_URL names a server where the role may create
# databases (each test gets a new one), e.g. postgresql+psycopg://USER:PASSWORD@127.0.0.1:5432/postgres
test-postgres: $(INSTALLED) $(CODEGEN_INSTALLED)
	@test -n "$$LICENSING_TEST_DATABASE_URL" || \
		{ echo "Set LICENSING_TEST_DATABASE_URL to a PostgreSQL server URL." >&2; exit 2; }
	$(call BOTH_STAGES,LICENSING_REQUIRE_POSTGRES=1 )

# The browser tests again, writing each state of the tab to tests/browser/artifacts/ to look at.
screenshots: $(INSTALLED)
	LICENSING_SCREENSHOTS=1 $(BIN)/pytest -n $(PYTEST_WORKERS) tests/browser

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schema: $(INSTALLED)
	$(BIN)/licensing schema --write schema.graphql

# Releases the changelog's unreleased version (docs/api-changes.md): stops on a breaking change the
# changelog does not name; copies schema.graphql to docs/schema/released.graphql; opens the next section.
release-schema: $(INSTALLED)
	$(BIN)/licensing schema --write schema.graphql
	$(BIN)/licensing schema --release

# The benchmarks in bench/: prints their tables and writes the figures into docs/benchmarks.md. Each
# runs on SQLite, then on a throwaway PostgreSQL cluster started for the run (Debian's postgresql
# package; without it, SQLite only). BENCH_ARGS passes options, e.g. BENCH_ARGS=--sqlite-only.
bench: $(INSTALLED)
	@command -v wrk >/dev/null 2>&1 || { \
		echo "Installing Debian's wrk, the dashboard benchmark's load generator." >&2; \
		if [ "$$(id -u)" -eq 0 ]; then apt-get install -y -qq wrk; \
		else sudo apt-get install -y -qq wrk; fi; }
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(CODEGEN_VENV) .data .pytest_cache .ruff_cache
