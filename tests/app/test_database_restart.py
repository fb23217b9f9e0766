"""PostgreSQL restarted under load (`pg_ctl restart -m fast`), as an operator's upgrade or a
failover does, while users read the dashboard, change the alert threshold and a roster sync runs.

What they must see: during the outage, HTTP 503 with the code DATABASE_UNAVAILABLE and
Retry-After, never a 500 or an internal error; within 5 s of the database being back, every
worker serving again; afterwards, every threshold change that was acknowledged in the database
(audit log and stored value agreeing), and the sync either applied or marked failed, the stored
counts equal to a recount.

The test restarts a PostgreSQL cluster of its own (never the one the other tests share), so it runs
in the PostgreSQL stage of `.ci/run` (LICENSING_TEST_DATABASE_URL set), where the PostgreSQL
binaries are installed; with LICENSING_REQUIRE_POSTGRES=1 it fails rather than skip without them.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, Engine, create_engine, event, text

from licensing.storage import signing
from tests.utils.cli import run
from tests.utils.databases import REQUIRE_POSTGRES, SERVER_URL
from tests.utils.districts import TEST_KEY_ID, public_key_text
from tests.utils.oneroster_bundle import write_users_bundle
from tests.utils.server_process import (
    free_port,
    licensing_serve,
    start_licensing,
    stop_process_group,
)

# Starts several server processes and measures them under load: `make test` runs these tests
# by themselves, beside the other tests, which run at a lower priority (marker "servers").
pytestmark = pytest.mark.servers

WORKERS = 2
CLIENTS = 8
SLUG = "riverside"
SEATS = 100_000
# The database must serve every worker again within this long of being back (the bound).
RECOVERY_SECONDS = 5.0
LOAD_BEFORE_RESTART_SECONDS = 1.5
LOAD_AFTER_RECOVERY_SECONDS = 3.0
REQUEST_TIMEOUT_SECONDS = 20.0
SYNC_TIMEOUT_SECONDS = 40.0
ROSTER = {"active": 30_000, "inactive": 500, "staff": 500}
FORBIDDEN_TEXT = ("Internal error", "INTERNAL_SERVER_ERROR", "Traceback", "psycopg", "SELECT")

DASHBOARD = "{ license { display used total remaining level } usage { activeStudents } }"
SET_THRESHOLD = """
mutation Set($value: Int!) {
  setThreshold(studentsRemaining: $value) {
    licenseSettings { studentsRemainingThreshold }
    errors { code }
  }
}
"""


# --- A PostgreSQL cluster of the test's own --------------------------------------------------------


def postgres_bin() -> Path | None:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: p.parent.parent.name
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


@dataclass
class Cluster:
    """A throwaway cluster, run by the unprivileged postgres user when the tests run as root."""

    bin: Path
    folder: Path
    port: int
    owner: str
    url: str = ""

    def command(self, program: str, *args: str) -> list[str]:
        argv = [str(self.bin / program), *args]
        if os.getuid() != 0:
            return argv
        return ["su", "postgres", "-s", "/bin/sh", "-c", subprocess.list2cmdline(argv)]

    def run(self, program: str, *args: str) -> None:
        subprocess.run(self.command(program, *args), check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c max_connections=100 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off"
        )
        self.run("pg_ctl", "-D", str(self.folder / "data"), "-l", str(self.folder / "log"),
                 "-w", "-o", options, "start")  # fmt: skip

    def restart(self) -> None:
        """Fast shutdown (every session ended, open transactions rolled back), then start."""
        # With its log file: the server started again must not hold this process's output open.
        self.run("pg_ctl", "-D", str(self.folder / "data"), "-l", str(self.folder / "log"),
                 "-m", "fast", "-w", "restart")  # fmt: skip

    def stop(self) -> None:
        subprocess.run(
            self.command("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "stop"),
            capture_output=True,
            timeout=60,
        )


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if not SERVER_URL:
        pytest.skip("runs in the PostgreSQL stage (LICENSING_TEST_DATABASE_URL set)")
    pg_bin = postgres_bin()
    if pg_bin is None:
        if REQUIRE_POSTGRES:
            pytest.fail("LICENSING_REQUIRE_POSTGRES is set but pg_ctl is not installed")
        pytest.skip("the PostgreSQL server binaries are not installed")
    owner = "postgres" if os.getuid() == 0 else os.environ.get("USER") or "postgres"
    folder = Path(tempfile.mkdtemp(prefix="licensing-restart-"))
    if os.getuid() == 0:
        shutil.chown(folder, user="postgres")
    folder.chmod(0o700)
    cluster = Cluster(bin=pg_bin, folder=folder, port=free_port(), owner=owner)
    password = secrets.token_hex(16)
    password_file = folder / "password"
    password_file.write_text(password + "\n")
    if os.getuid() == 0:
        shutil.chown(password_file, user="postgres")
    try:
        cluster.run(
            "initdb", "-D", str(folder / "data"), "-U", "licensing", "--no-sync",
            "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}",
        )  # fmt: skip
        cluster.start()
        cluster.url = f"postgresql+psycopg://licensing:{password}@127.0.0.1:{cluster.port}/postgres"
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


# --- The deployment ------------------------------------------------------------------------------------


@dataclass
class Deployment:
    base_url: str
    tokens: list[str]
    env: dict[str, str]
    folder: Path
    database_url: str
    log: Any


@pytest.fixture
def deployment(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signing_key: Any
) -> Iterator[Deployment]:
    bundle = tmp_path / "sis"
    write_users_bundle(bundle, active=100)
    config = tmp_path / "licensing.toml"
    config.write_text(
        f"database_url = {json.dumps(cluster.url)}\n"
        f"data_dir = {json.dumps(str(tmp_path / 'data'))}\n"
        "scheduler_enabled = false\n"
        f"license_public_keys = [{json.dumps(public_key_text(signing_key))}]\n"
        "[rate_limit]\nenabled = false\n"
        f"[districts.{SLUG}.roster_sources.sis]\n"
        'kind = "oneroster_csv"\n'
        f"options = {{ path = {json.dumps(str(bundle))} }}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("LICENSING_CONFIG", str(config))
    connected: set[Engine] = set()

    def track(connection: Connection) -> None:
        connected.add(connection.engine)

    # The commands run in this process; their pools must not outlive the cluster.
    event.listen(Engine, "engine_connect", track)
    try:
        run("db", "upgrade")
        run("district", "create", SLUG, "--name", "Riverside Unified School District")
        write_license(tmp_path / "data" / "licenses" / f"{SLUG}.license", signing_key)
        run("sync", "--district", SLUG)  # the license and the first roster
        tokens = [
            run("token", "create", "--district", SLUG, "--permission", "MANAGE_SETTINGS",
                "--name", f"user {number}").stdout.strip()
            for number in range(CLIENTS)
        ]  # fmt: skip
        # The roster the sync under test brings in: large enough to be running at the restart.
        write_users_bundle(bundle, **ROSTER)
        env = dict(os.environ)
        with licensing_serve(
            workers=WORKERS, env=env, log_path=tmp_path / "serve.log", cwd=tmp_path
        ) as server:
            yield Deployment(server.base_url, tokens, env, tmp_path, cluster.url, server.log)
    finally:
        event.remove(Engine, "engine_connect", track)
        for engine in connected:
            engine.dispose()


def write_license(path: Path, key: Any) -> None:
    today = date.today()
    terms = signing.LicenseTerms(
        license_id="M1T1-RIVERSIDE",
        district=SLUG,
        licensed_to="Riverside Unified School District",
        legal_entity_name=None,
        total=SEATS,
        created_on=today - timedelta(days=30),
        expires_on=today + timedelta(days=700),
        deactivated=False,
        overage_allowance=0.0,
        issued_at=datetime.now(UTC) - timedelta(hours=1),
    )
    signed = signing.sign_license(terms, private_key=key, key_id=TEST_KEY_ID)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(signed.to_envelope())


# --- The load ----------------------------------------------------------------------------------------


@dataclass
class Answer:
    kind: str  # dashboard, threshold
    value: int | None
    sent: float
    received: float
    status: int | None
    headers: dict[str, str]
    text: str
    error: str | None = None

    def body(self) -> Any:
        return json.loads(self.text)


@dataclass
class Load:
    answers: list[Answer] = field(default_factory=list)
    values: Iterator[int] = field(default_factory=lambda: iter(range(1, 10**6)))


async def one_client(base_url: str, token: str, load: Load, until: asyncio.Event) -> None:
    # No kept-alive connections: each request is accepted by whichever worker is free, so the
    # answers come from every worker.
    async with httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=REQUEST_TIMEOUT_SECONDS,
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as http:
        turn = 0
        while not until.is_set():
            turn += 1
            kind = "threshold" if turn % 2 else "dashboard"
            value = next(load.values) if kind == "threshold" else None
            document = SET_THRESHOLD if kind == "threshold" else DASHBOARD
            sent = time.monotonic()
            try:
                response = await http.post(
                    "/graphql", json={"query": document, "variables": {"value": value}}
                )
            except httpx.HTTPError as error:
                load.answers.append(
                    Answer(kind, value, sent, time.monotonic(), None, {}, "", repr(error))
                )
                continue
            load.answers.append(
                Answer(
                    kind,
                    value,
                    sent,
                    time.monotonic(),
                    response.status_code,
                    dict(response.headers),
                    response.text,
                )
            )
            await asyncio.sleep(0.02)


def unexpected_errors(deployment: Deployment, lines: int = 80) -> str:
    """The servers' log from its first unexpected error on, to say what was masked."""
    log = (deployment.folder / "serve.log").read_text(encoding="utf-8", errors="replace")
    first = log.find("Unexpected error")
    if first < 0:
        return "(the servers logged no unexpected error)"
    return "\n".join(log[first:].splitlines()[:lines])


def wait_until_staging(database_url: str) -> None:
    """Return once the sync has staged rows, so the restart meets it in the middle."""
    engine = create_engine(database_url)
    deadline = time.monotonic() + SYNC_TIMEOUT_SECONDS
    try:
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                staged = connection.execute(text("SELECT count(*) FROM roster_staging")).scalar()
            if staged:
                return
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise AssertionError("the sync staged nothing in time")


def test_a_postgresql_restart_under_load_answers_503_then_serves_again_and_loses_nothing(
    cluster: Cluster, deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    sync = start_licensing(
        ["sync", "--district", SLUG, "--source", "sis"],
        env=deployment.env,
        log_path=deployment.folder / "sync.log",
        cwd=deployment.folder,
    )

    async def scenario() -> tuple[Load, float, float]:
        load = Load()
        stop = asyncio.Event()
        clients = [
            asyncio.create_task(one_client(deployment.base_url, token, load, stop))
            for token in deployment.tokens
        ]
        await asyncio.sleep(LOAD_BEFORE_RESTART_SECONDS)
        await asyncio.to_thread(wait_until_staging, deployment.database_url)
        restart_started = time.monotonic()
        await asyncio.to_thread(cluster.restart)
        back = time.monotonic()  # pg_ctl -w returns once the server accepts connections
        await asyncio.sleep(RECOVERY_SECONDS + LOAD_AFTER_RECOVERY_SECONDS)
        stop.set()
        await asyncio.gather(*clients)
        return load, restart_started, back

    try:
        load, restart_started, back = asyncio.run(scenario())
        sync.wait(SYNC_TIMEOUT_SECONDS)
    finally:
        stop_process_group(sync)
    sync_log = (deployment.folder / "sync.log").read_text(encoding="utf-8", errors="replace")
    answers = load.answers

    # No 500, no dropped connection, nothing internal: during the outage, 503 with a code.
    failed = [a for a in answers if a.error or a.status is None or a.status not in (200, 503)]
    assert not failed, f"{len(failed)} request(s) failed, e.g. {failed[0]}"
    unavailable = [a for a in answers if a.status == 503]
    for answer in unavailable:
        codes = {error["extensions"]["code"] for error in answer.body()["errors"]}
        assert codes == {"DATABASE_UNAVAILABLE"}, answer.text
        assert int(answer.headers["retry-after"]) >= 1
    for forbidden in FORBIDDEN_TEXT:
        leaked = [a for a in answers if forbidden in a.text]
        assert not leaked, f"{forbidden!r} in {leaked[0]}\n{unexpected_errors(deployment)}"
    for answer in answers:
        if answer.status == 200:
            assert "errors" not in answer.body(), f"{answer}\n{unexpected_errors(deployment)}"

    # Every worker serves again within RECOVERY_SECONDS of the database being back: after that,
    # every request (each on a new connection, so spread over the workers) is answered.
    late = [a for a in answers if a.sent >= back + RECOVERY_SECONDS]
    assert len(late) >= 10 * WORKERS, "too little load after the recovery to tell"
    assert all(a.status == 200 for a in late), [a for a in late if a.status != 200][:3]
    last_refused = max((a.received for a in unavailable), default=back)
    recovered_after = max(0.0, last_refused - back)
    assert recovered_after <= RECOVERY_SECONDS

    # Every acknowledged change is in the database: the audit log holds it, and the stored
    # threshold is the one the audit log changed last.
    acknowledged = {
        a.value
        for a in answers
        if a.kind == "threshold"
        and a.status == 200
        and a.body()["data"]["setThreshold"]["errors"] == []
    }
    engine = create_engine(deployment.database_url)
    try:
        with engine.connect() as connection:
            changes = (
                connection.execute(
                    text(
                        "SELECT new_value FROM audit_event WHERE action = 'set_threshold' "
                        "AND outcome = 'changed' ORDER BY id"
                    )
                )
                .scalars()
                .all()
            )
            stored = connection.execute(
                text("SELECT students_remaining_threshold FROM license_settings")
            ).scalar_one()
            runs = Counter(
                connection.execute(text("SELECT status FROM roster_sync_run")).scalars().all()
            )
    finally:
        engine.dispose()
    applied = [json.loads(value) for value in changes]
    assert acknowledged <= set(applied), sorted(acknowledged - set(applied))[:5]
    assert stored == applied[-1]
    sent_values = {a.value for a in answers if a.kind == "threshold"}
    assert set(applied) <= sent_values  # nothing applied that no one sent

    # The sync: applied (it went on, or was retried, after the restart), marked failed, or, when
    # the database was still down as the command stopped, left running for the stale-run reaper
    # (its heartbeat stops; the roster_cleanup job marks it failed).
    assert sync.returncode is not None, f"the sync did not end:\n{sync_log}"
    stopped_for_database = "Run it again once the database is back" in sync_log
    assert (
        runs["applied"] >= 2
        or runs["failed"] >= 1
        or (stopped_for_database and runs["applied"] == 1 and runs["running"] == 1)
    ), (runs, sync_log)
    assert "Traceback" not in sync_log, sync_log
    recount = run("db", "check")
    assert "Counts agree with a recount" in recount.stderr

    with capsys.disabled():
        print(
            f"\nPostgreSQL restart under load: {WORKERS} workers, {CLIENTS} clients, "
            f"{len(answers)} requests; restart took {back - restart_started:.1f} s; "
            f"{len(unavailable)} answered 503; served again {recovered_after:.1f} s after the "
            f"database was back; {len(acknowledged)} acknowledged threshold changes all kept; "
            f"sync runs {dict(runs)} (exit {sync.returncode})"
        )
