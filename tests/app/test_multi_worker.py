"""Many users at once against `licensing serve --workers 4`, as production runs it.

Two hundred clients read the dashboard, change the alert threshold and press Force License
Update at the same time, spread over four worker processes that share only the database (SQLite
here, PostgreSQL in CI). What they must see is what one careful user would: no server error,
exactly one request to the licensing server however many presses (the rest throttled or sharing
it), the threshold that was acknowledged last in the server's order kept, and one audit event for
each acknowledged change. The second test does the same while `licensing sync` replaces a roster
of tens of thousands of students in another process.

The figures (workers, clients, requests, latency, upstream requests) are printed with the test
results, so a run shows how the service held up, not only that it did.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import ssl
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlmodel import select

from app.dev_license_server import create_license_server
from app.runtime import build_service
from db.models import District
from licensing.settings import load_settings
from licensing.storage import signing
from licensing.storage.tokens import Permission, create_token
from tests.fakes.serve import serve
from tests.utils.cli import run
from tests.utils.districts import TEST_KEY_ID, public_key_text
from tests.utils.oneroster_bundle import BundleCounts, write_users_bundle
from tests.utils.server_process import (
    ServerProcess,
    licensing_serve,
    start_licensing,
    stop_process_group,
)

# Starts several server processes and measures them under load: `make test` runs these tests
# by themselves, beside the other tests, which run at a lower priority (marker "servers").
pytestmark = pytest.mark.servers

WORKERS = 4
CLIENTS = 200
READ_BACK_ATTEMPTS = 30  # reading the audit log back may wait for the token's rate limit
SLUG = "riverside"
API_KEY = "riverside-licensing-api-key-0123456789"
COOLDOWN_SECONDS = 60  # the product's default: every test here ends well within one window
INITIAL_SEATS = 1000
UPDATED_SEATS = 1200
# The licensing server takes this long to answer, so presses arriving meanwhile meet the request
# in flight (shared within a worker, throttled across workers).
UPSTREAM_DELAY_SECONDS = 0.3
# The thresholds sent cross remaining = 400 (600 of 1000 used), so alerts are raised and resolved
# while the threshold moves; each setThreshold sends a value no other sends.
FIRST_THRESHOLD = 200
THRESHOLDS_PER_CLIENT = 2
READS_PER_CLIENT = 2
CLIENT_TIMEOUT_SECONDS = 45.0
SYNC_TIMEOUT_SECONDS = 50.0
# Errors that must never reach a user or the server log.
FORBIDDEN_TEXT = ("database is locked", "Internal error", "Traceback", "Unexpected error")

INITIAL_ROSTER = {"active": 600, "inactive": 30, "disabled": 10, "staff": 40}
SYNCED_ROSTER = {"active": 20_000, "inactive": 1_500, "disabled": 500, "staff": 1_200}

DASHBOARD = """
query Dashboard {
  license { display used total remaining level status }
  usage { activeStudents }
  alerts { kind message }
}
"""
SET_THRESHOLD = """
mutation SetThreshold($value: Int!) {
  setThreshold(studentsRemaining: $value) {
    licenseSettings { studentsRemainingThreshold }
    errors { code message }
  }
}
"""
FORCE_UPDATE = """
mutation Force {
  forceLicenseUpdate { updated inProgress throttled retryAfterSeconds license { total } errors { code } }
}
"""
SETTINGS = "{ licenseSettings { studentsRemainingThreshold } license { total } }"
DATA_SOURCES = "{ dataSources { name lastStatus records activeStudents } usage { activeStudents } }"
AUDIT_PAGE = """
query Audit($after: String) {
  auditLog(first: 100, after: $after) {
    edges { node { id actor action outcome oldValue newValue } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


# --- The licensing server, counted ---------------------------------------------------------------


class CountingUpstream:
    """The reference licensing server, counting the license requests it is sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[float] = []  # monotonic time of each license request

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/license"):
            self.requests.append(time.monotonic())
            await asyncio.sleep(UPSTREAM_DELAY_SECONDS)
        await self.app(scope, receive, send)


def license_terms(*, seats: int, issued_at: datetime) -> signing.LicenseTerms:
    today = date.today()
    return signing.LicenseTerms(
        license_id="M1T1-RIVERSIDE",
        district=SLUG,
        licensed_to="Riverside Unified School District",
        legal_entity_name=None,
        total=seats,
        created_on=today - timedelta(days=365),
        expires_on=today + timedelta(days=2 * 365),  # far from the renewal window
        deactivated=False,
        overage_allowance=0.0,
        issued_at=issued_at,
    )


# --- The deployment: configuration, database, district, tokens, the server -----------------------


@dataclass
class Token:
    name: str
    secret: str


@dataclass
class Deployment:
    server: ServerProcess
    upstream: CountingUpstream
    administrator: Token  # reads the results back
    tokens: list[Token]  # one per client, as each user signs in with their own
    bundle: Path
    initial_roster: BundleCounts
    database_kind: str
    env: dict[str, str]
    folder: Path


def write_config(
    path: Path, *, database_url: str, data_dir: Path, public_key: str, upstream: str, bundle: Path
) -> None:
    # JSON strings are valid TOML basic strings.
    path.write_text(
        f"database_url = {json.dumps(database_url)}\n"
        f"data_dir = {json.dumps(str(data_dir))}\n"
        "scheduler_enabled = false  # only the clients (and `licensing sync`) act\n"
        f"force_update_cooldown_seconds = {COOLDOWN_SECONDS}\n"
        # Every press waits for the one upstream request, however slow a loaded machine makes
        # it; answering "in progress" after a bounded wait is tested on its own.
        "force_update_wait_seconds = 60\n"
        f"license_public_keys = [{json.dumps(public_key)}]\n"
        f"\n[districts.{SLUG}]\n"
        'license_source = "licensing_server"\n'
        f"license_options = {{ url = {json.dumps(upstream)}, api_key = {json.dumps(API_KEY)} }}\n"
        f"\n[districts.{SLUG}.roster_sources.sis]\n"
        'kind = "oneroster_csv"\n'
        f"options = {{ path = {json.dumps(str(bundle))} }}\n",
        encoding="utf-8",
    )


@pytest.fixture
def deployment(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    new_database_url: Any,
    signing_key: Any,
) -> Iterator[Deployment]:
    """A district on a licensing server, set up with the command line as an administrator does,
    served by `licensing serve --workers 4`; the licensing server then has a new license ready
    (more seats) for Force License Update to fetch."""
    database_url = new_database_url("multi_worker")
    now = datetime.now(UTC)
    licenses = {SLUG: license_terms(seats=INITIAL_SEATS, issued_at=now - timedelta(days=1))}
    upstream = CountingUpstream(
        create_license_server(
            signing_key=signing_key,
            licenses=licenses,
            api_keys={API_KEY: SLUG},
            key_id=TEST_KEY_ID,
        )
    )
    bundle = tmp_path / "sis"
    initial_roster = write_users_bundle(bundle, **INITIAL_ROSTER)
    with serve(upstream) as upstream_url:
        config = tmp_path / "licensing.toml"
        write_config(
            config,
            database_url=database_url,
            data_dir=tmp_path / "data",
            public_key=public_key_text(signing_key),
            upstream=upstream_url,
            bundle=bundle,
        )
        monkeypatch.setenv("LICENSING_CONFIG", str(config))
        run("db", "upgrade")
        run("district", "create", SLUG, "--name", "Riverside Unified School District")
        created = run(
            "token", "create", "--district", SLUG, "--permission", "MANAGE_SETTINGS",
            "--name", "administrator",
        )  # fmt: skip
        administrator = Token(name="administrator", secret=created.stdout.strip())
        tokens = client_tokens()
        run("sync", "--district", SLUG)  # the first license and roster
        assert len(upstream.requests) == 1

        # The licensing service issues more seats; only Force License Update will fetch them.
        licenses[SLUG] = license_terms(seats=UPDATED_SEATS, issued_at=now - timedelta(minutes=1))
        upstream.requests.clear()
        env = dict(os.environ)
        with licensing_serve(
            workers=WORKERS, env=env, log_path=tmp_path / "serve.log", cwd=tmp_path
        ) as server:
            yield Deployment(
                server=server,
                upstream=upstream,
                administrator=administrator,
                tokens=tokens,
                bundle=bundle,
                initial_roster=initial_roster,
                database_kind=make_url(database_url).get_backend_name(),
                env=env,
                folder=tmp_path,
            )


def client_tokens() -> list[Token]:
    """A MANAGE_SETTINGS token for each client, made in one transaction (the command line
    would take a process start per token)."""
    service = build_service(load_settings())
    tokens = []
    with service.database.write() as session:
        district = session.exec(select(District).where(District.slug == SLUG)).one()
        for number in range(CLIENTS):
            name = f"user {number}"
            _token, secret = create_token(
                session,
                district=district,
                name=name,
                permissions={Permission.MANAGE_SETTINGS},
                now=service.clock(),
            )
            tokens.append(Token(name=name, secret=secret))
    service.database.dispose()
    return tokens


# --- The clients ------------------------------------------------------------------------------------


@dataclass
class Exchange:
    """One request a client sent and what came back (or the transport error)."""

    client: int
    kind: str  # read, threshold, force
    token: Token
    value: int | None
    sent: float  # monotonic
    received: float
    status: int | None
    text: str
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.received - self.sent

    def data(self) -> dict[str, Any]:
        return json.loads(self.text)["data"]


@dataclass
class Client:
    """One simulated user: their own token and their own connection."""

    number: int
    token: Token
    http: httpx.AsyncClient


@dataclass
class Storm:
    exchanges: list[Exchange] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0

    def of(self, kind: str) -> list[Exchange]:
        return [exchange for exchange in self.exchanges if exchange.kind == kind]


def client_plan(client: int) -> list[tuple[str, int | None]]:
    """Each client's requests, in an order of its own: reads, thresholds, one press."""
    steps: list[tuple[str, int | None]] = [("read", None)] * READS_PER_CLIENT
    steps += [
        ("threshold", FIRST_THRESHOLD + client * THRESHOLDS_PER_CLIENT + number)
        for number in range(THRESHOLDS_PER_CLIENT)
    ]
    steps.append(("force", None))
    random.Random(client).shuffle(steps)
    return steps


@asynccontextmanager
async def open_clients(deployment: Deployment) -> AsyncIterator[list[Client]]:
    """The clients, ready to go (each with its own connection), closed at the end."""
    # One TLS context for all: nothing here uses TLS, but each client would build its own, and
    # 200 of them take seconds.
    tls = ssl.create_default_context()
    clients = []
    for number in range(CLIENTS):
        token = deployment.tokens[number]
        http = httpx.AsyncClient(
            base_url=deployment.server.base_url,
            headers={"Authorization": f"Bearer {token.secret}"},
            timeout=CLIENT_TIMEOUT_SECONDS,
            verify=tls,
        )
        clients.append(Client(number, token, http))
    try:
        yield clients
    finally:
        for client in clients:
            await client.http.aclose()


async def one_client(client: Client, storm: Storm, reads_until: asyncio.Event | None) -> None:
    """One user's session; with ``reads_until``, it goes on reading the dashboard now and then
    until that event is set (a sync has finished), so the load spans the whole sync."""
    for kind, value in client_plan(client.number):
        await exchange(client, kind, value, storm)
    pause = random.Random(-client.number)
    while reads_until is not None and not reads_until.is_set():
        await asyncio.sleep(pause.uniform(0.5, 1.5))
        await exchange(client, "read", None, storm)


async def exchange(client: Client, kind: str, value: int | None, storm: Storm) -> None:
    query = {"read": DASHBOARD, "threshold": SET_THRESHOLD, "force": FORCE_UPDATE}[kind]
    variables = {"value": value} if value is not None else {}
    number, token = client.number, client.token
    sent = time.monotonic()
    try:
        response = await client.http.post("/graphql", json={"query": query, "variables": variables})
    except httpx.HTTPError as error:
        received = time.monotonic()
        storm.exchanges.append(
            Exchange(number, kind, token, value, sent, received, None, "", repr(error))
        )
        return
    received = time.monotonic()
    storm.exchanges.append(
        Exchange(number, kind, token, value, sent, received, response.status_code, response.text)
    )


async def run_storm(
    clients: list[Client],
    *,
    reads_until: asyncio.Event | None = None,
    storm: Storm | None = None,
) -> Storm:
    """Every client at once; what each sent and got back (into ``storm`` when given, so the
    caller can watch it fill)."""
    storm = storm if storm is not None else Storm()
    storm.started = time.monotonic()
    await asyncio.gather(*(one_client(client, storm, reads_until) for client in clients))
    storm.ended = time.monotonic()
    return storm


# --- Reading back through the API ------------------------------------------------------------------


def query(deployment: Deployment, document: str, variables: dict[str, Any] | None = None) -> Any:
    """The administrator's query; a rate-limited answer is retried after its Retry-After, as an
    integrator's client does (a page of the audit log costs a good part of the token's budget)."""
    for _attempt in range(READ_BACK_ATTEMPTS):
        response = httpx.post(
            f"{deployment.server.base_url}/graphql",
            json={"query": document, "variables": variables or {}},
            headers={"Authorization": f"Bearer {deployment.administrator.secret}"},
            timeout=CLIENT_TIMEOUT_SECONDS,
        )
        if response.status_code != 429:
            break
        time.sleep(float(response.headers.get("Retry-After", "1")))
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def audit_log(deployment: Deployment) -> list[dict[str, Any]]:
    """The whole audit log, oldest first (the server's order of events)."""
    events: list[dict[str, Any]] = []
    after = None
    while True:
        page = query(deployment, AUDIT_PAGE, {"after": after})["auditLog"]
        events += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return list(reversed(events))
        after = page["pageInfo"]["endCursor"]


# --- What every storm must show --------------------------------------------------------------------


@dataclass
class Findings:
    """What the checks worked out, for the figures."""

    upstream: int
    went_upstream: int
    throttled: int
    last_ack_was_last_applied: bool


def check_no_errors(storm: Storm, deployment: Deployment) -> None:
    failed = [e for e in storm.exchanges if e.error or e.status is None or e.status >= 500]
    assert not failed, f"{len(failed)} request(s) failed, e.g. {failed[0]}"
    not_ok = [e for e in storm.exchanges if e.status != 200]
    assert not not_ok, f"{len(not_ok)} answer(s) not HTTP 200, e.g. {not_ok[0]}"
    with_errors = [e for e in storm.exchanges if "errors" in json.loads(e.text)]
    assert not with_errors, f"{len(with_errors)} answer(s) with errors, e.g. {with_errors[0].text}"
    for text in FORBIDDEN_TEXT:
        assert not any(text in e.text for e in storm.exchanges), text
        assert text not in deployment.server.log(), f"the server logged {text!r}"


def check_thresholds(storm: Storm, events: list[dict[str, Any]], initial: int) -> bool:
    """Each acknowledged setThreshold has exactly one audit event; the events form one chain
    (each change starts from the value the one before it left); the final threshold is the value
    of the change the server applied last; and the server's order agrees with what the clients
    saw: a change acknowledged before another was sent comes before it. Returns whether the
    change acknowledged last by the clients' clock was also the last applied (with concurrent
    requests it need not be: the two were in flight together)."""
    acknowledged = storm.of("threshold")
    for sent in acknowledged:
        payload = sent.data()["setThreshold"]
        assert payload["errors"] == [], payload
    changes = [e for e in events if e["action"] == "SET_THRESHOLD"]
    assert {e["outcome"] for e in changes} == {"CHANGED"}
    applied = [e["newValue"] for e in changes]
    assert Counter(applied) == Counter(sent.value for sent in acknowledged), (
        "the audit log must hold exactly one event per acknowledged change"
    )
    previous = initial
    for event in changes:
        assert event["oldValue"] == previous, "a change was lost or applied twice"
        previous = event["newValue"]

    by_value = {sent.value: sent for sent in acknowledged}
    for event in changes:
        assert event["actor"].endswith(f"({by_value[event['newValue']].token.name})")
    in_order = [by_value[value] for value in applied]
    # Real-time order: no change applied before another whose acknowledgement came first had
    # reached the client (earliest acknowledgement among the later-applied ones, by suffix).
    earliest_later_ack = float("inf")
    for position in range(len(in_order) - 1, -1, -1):
        change = in_order[position]
        assert earliest_later_ack >= change.sent, (
            f"setThreshold({change.value}) was applied before a change that had already been "
            "acknowledged when it was sent"
        )
        earliest_later_ack = min(earliest_later_ack, change.received)
    last_applied = in_order[-1]
    last_acknowledged = max(acknowledged, key=lambda sent: sent.received)
    if last_applied is not last_acknowledged:
        # Then they were in flight together: neither was sent after the other was acknowledged.
        assert last_applied.sent <= last_acknowledged.received
        assert last_acknowledged.sent <= last_applied.received
    return last_applied is last_acknowledged


def check_force_updates(
    storm: Storm, events: list[dict[str, Any]], deployment: Deployment
) -> tuple[int, int]:
    """One request to the licensing server for all the presses; every press not throttled got
    its answer (updated); one audit event for the update, at most one per throttled press.
    Returns (presses answered by the update, presses throttled)."""
    assert len(deployment.upstream.requests) == 1, (
        f"{len(deployment.upstream.requests)} license requests within one cooldown window"
    )
    payloads = [sent.data()["forceLicenseUpdate"] for sent in storm.of("force")]
    assert len(payloads) == CLIENTS
    throttled = [p for p in payloads if p["throttled"]]
    served = [p for p in payloads if not p["throttled"]]
    assert served, "no press reached the licensing server"
    for payload in served:
        assert payload["inProgress"] is False
        assert payload["updated"] is True
        assert payload["license"]["total"] == UPDATED_SEATS
    for payload in throttled:
        assert payload["updated"] is False
        assert 1 <= payload["retryAfterSeconds"] <= COOLDOWN_SECONDS
    forced = [e for e in events if e["action"] == "FORCE_LICENSE_UPDATE"]
    outcomes = Counter(e["outcome"] for e in forced)
    assert outcomes["UPDATED"] == 1, outcomes
    assert set(outcomes) <= {"UPDATED", "THROTTLED"}, outcomes
    # Presses of one worker that meet a claim in flight share its answer (and its one event).
    assert (outcomes["THROTTLED"] >= 1) == bool(throttled)
    assert outcomes["THROTTLED"] <= len(throttled)
    refreshes = [e for e in events if e["action"] == "LICENSE_REFRESH"]
    assert len(refreshes) == 1, "only the setup's `licensing sync` refreshed the license"
    return len(served), len(throttled)


def check_reads(storm: Storm, allowed_active: set[int]) -> None:
    for read in storm.of("read"):
        data = read.data()
        assert data["license"]["total"] in (INITIAL_SEATS, UPDATED_SEATS)
        assert data["usage"]["activeStudents"] in allowed_active, data["usage"]
        assert data["license"]["used"] == data["usage"]["activeStudents"]


def check_storm(storm: Storm, deployment: Deployment, *, initial_threshold: int) -> Findings:
    check_no_errors(storm, deployment)
    events = audit_log(deployment)
    last_ack_was_last_applied = check_thresholds(storm, events, initial_threshold)
    went_upstream, throttled = check_force_updates(storm, events, deployment)
    final = query(deployment, SETTINGS)
    last_change = [e for e in events if e["action"] == "SET_THRESHOLD"][-1]
    assert final["licenseSettings"]["studentsRemainingThreshold"] == last_change["newValue"]
    assert final["license"]["total"] == UPDATED_SEATS
    return Findings(
        upstream=len(deployment.upstream.requests),
        went_upstream=went_upstream,
        throttled=throttled,
        last_ack_was_last_applied=last_ack_was_last_applied,
    )


def report(
    capsys: pytest.CaptureFixture[str],
    title: str,
    storm: Storm,
    deployment: Deployment,
    findings: Findings,
    extra: tuple[str, ...] = (),
) -> None:
    """Print the figures with the test results, even when pytest captures output."""

    def milliseconds(exchanges: list[Exchange], percentile: int) -> str:
        cuts = statistics.quantiles([e.seconds for e in exchanges], n=100, method="inclusive")
        return f"{cuts[percentile - 1] * 1000:.0f} ms"

    duration = storm.ended - storm.started
    kinds = Counter(e.kind for e in storm.exchanges)
    by_kind = ", ".join(
        f"{name} p50 {milliseconds(storm.of(kind), 50)} p99 {milliseconds(storm.of(kind), 99)}"
        for kind, name in (("read", "reads"), ("threshold", "setThreshold"), ("force", "force"))
    )
    lines = [
        f"{title} ({deployment.database_kind}): {WORKERS} workers, {CLIENTS} clients, "
        f"{len(storm.exchanges)} requests in {duration:.1f} s "
        f"({len(storm.exchanges) / duration:.0f} requests/s)",
        f"  requests: {kinds['read']} dashboard reads, {kinds['threshold']} setThreshold, "
        f"{kinds['force']} forceLicenseUpdate ({findings.went_upstream} answered by the update, "
        f"{findings.throttled} throttled)",
        f"  latency: p50 {milliseconds(storm.exchanges, 50)}, p99 "
        f"{milliseconds(storm.exchanges, 99)} ({by_kind})",
        f"  upstream license requests: {findings.upstream} (cooldown {COOLDOWN_SECONDS} s); "
        "last acknowledged threshold was "
        + (
            "also the last applied"
            if findings.last_ack_was_last_applied
            else "in flight with the last applied"
        ),
        *extra,
    ]
    with capsys.disabled():
        print("\n" + "\n".join(lines))


# --- The tests -----------------------------------------------------------------------------------------


def test_200_clients_on_four_workers_get_one_upstream_request_and_a_consistent_audit_log(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    initial = query(deployment, SETTINGS)["licenseSettings"]["studentsRemainingThreshold"]

    async def load() -> Storm:
        async with open_clients(deployment) as clients:
            return await run_storm(clients)

    storm = asyncio.run(load())

    findings = check_storm(storm, deployment, initial_threshold=initial)
    check_reads(storm, {deployment.initial_roster.active_students})
    report(capsys, "multi-worker load", storm, deployment, findings)


def test_the_same_load_while_a_roster_sync_replaces_tens_of_thousands_of_students(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    initial = query(deployment, SETTINGS)["licenseSettings"]["studentsRemainingThreshold"]
    before = deployment.initial_roster.active_students
    synced = write_users_bundle(deployment.bundle, **SYNCED_ROSTER)

    async def load_during_sync() -> tuple[Storm, float, float | None, int | None]:
        async with open_clients(deployment) as clients:
            return await load_with(clients)

    async def load_with(clients: list[Client]) -> tuple[Storm, float, float | None, int | None]:
        finished = asyncio.Event()
        storm = Storm()
        load = asyncio.create_task(run_storm(clients, reads_until=finished, storm=storm))
        # The sync starts once the load has had a read answered, so that however slowly a busy
        # machine starts the clients, some reads see the roster from before the sync.
        while not any(read.status == 200 for read in storm.of("read")) and not load.done():
            await asyncio.sleep(0.02)
        started = time.monotonic()
        sync = start_licensing(
            ["sync", "--district", SLUG, "--source", "sis"],
            env=deployment.env,
            log_path=deployment.folder / "sync.log",
            cwd=deployment.folder,
        )

        async def watch() -> float | None:
            """When the sync process ended (None: not within the time allowed)."""
            try:
                while sync.poll() is None:
                    if time.monotonic() - started > SYNC_TIMEOUT_SECONDS:
                        return None
                    await asyncio.sleep(0.05)
                return time.monotonic()
            finally:
                finished.set()  # the clients stop reading either way

        try:
            # The clients go on reading until the sync has ended, so the swap happens under load.
            watcher = asyncio.create_task(watch())
            await load
            return storm, started, await watcher, sync.poll()
        finally:
            stop_process_group(sync)

    storm, sync_started, sync_ended, exit_code = asyncio.run(load_during_sync())

    sync_log = (deployment.folder / "sync.log").read_text(encoding="utf-8")
    assert sync_ended is not None, f"the sync took over {SYNC_TIMEOUT_SECONDS} s:\n{sync_log}"
    assert exit_code == 0, sync_log
    assert f"{synced.records:,} records, {synced.active_students:,} active students" in sync_log
    assert storm.started < sync_ended <= storm.ended, "the sync did not end during the load"
    findings = check_storm(storm, deployment, initial_threshold=initial)
    # Every read saw the roster before the sync or after it, never a part of it; once the sync
    # had ended, only after.
    check_reads(storm, {before, synced.active_students})
    assert all(
        read.data()["usage"]["activeStudents"] == synced.active_students
        for read in storm.of("read")
        if read.sent > sync_ended
    )
    seen = Counter(read.data()["usage"]["activeStudents"] for read in storm.of("read"))
    assert seen[before] and seen[synced.active_students], (
        f"the roster changed outside the load: {seen}"
    )
    syncs = [e for e in audit_log(deployment) if e["action"] == "ROSTER_SYNC"]
    assert [(e["outcome"], e["newValue"]["used"]) for e in syncs] == [
        ("APPLIED", before),
        ("APPLIED", synced.active_students),
    ]
    sources = query(deployment, DATA_SOURCES)
    assert sources["dataSources"] == [
        {
            "name": "sis",
            "lastStatus": "APPLIED",
            "records": synced.records,
            "activeStudents": synced.active_students,
        }
    ]
    assert sources["usage"]["activeStudents"] == synced.active_students
    recount = run("db", "check")  # the maintained counts agree with a recount
    assert "Counts agree with a recount" in recount.stderr
    report(
        capsys,
        "multi-worker load with a roster sync",
        storm,
        deployment,
        findings,
        (
            f"  roster sync: {synced.records:,} records, {before:,} -> "
            f"{synced.active_students:,} active students in {sync_ended - sync_started:.1f} s; "
            f"reads saw {seen[before]} before, {seen[synced.active_students]} after",
        ),
    )
