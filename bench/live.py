"""Benchmark: live subscriptions on one worker: its idle CPU, and how fast a change reaches them.

    .venv/bin/python bench/live.py [--subscriptions 10000] [--idle-seconds 20] [--markdown]
    .venv/bin/python bench/live.py --postgres postgresql+psycopg://USER:PW@HOST/postgres

It builds a database (a SQLite file, or with ``--postgres SERVER_URL`` a new database on that
server) with one district in the "licenses low" state (960 of 1,000 seats, threshold 50) and
serves it with ``licensing serve --workers 1`` (the default settings: changes read every
``live_poll_seconds``, the default rate limits, so the subscriptions' time is charged as
in production). Client processes (``--clients``, asyncio and ``websockets``) then open the
subscriptions as the Licensing tab does: one websocket per tab (graphql-transport-ws, the token
in the handshake), each holding ``licenseChanged`` and ``alertsChanged``; as many API tokens as
the per-token cap (``rate_limit.max_subscriptions_per_token``, 20) requires. Clients send no
websocket pings of their own, as browsers do not.

Measured:

- the server process's CPU (user and system time, from /proc) over ``--idle-seconds`` with no
  subscription open, then again with all of them open and nothing changing, as a share of one core;
- ``--changes`` times, one student added to the district's roster by another process (as
  another worker or ``licensing roster import`` would), committed, then the time until each
  subscription has received its update (both subscriptions change: the count, and the alert's
  "You have N licenses remaining").

Target (SPEC section 8): 10,000 subscriptions on one worker, a change reaches every subscriber
within 1 s, and the idle worker stays under 5% of one core. The exit status is 1 when a
subscription was refused or did not receive an update within ``DELIVERY_TIMEOUT_SECONDS``.
Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from bench.dashboard import add_bench_district, free_port, running_server  # noqa: E402
from bench.postgres import database_name, fresh_database  # noqa: E402
from bench.tables import markdown_table, show  # noqa: E402
from licensing.settings import Settings  # noqa: E402

LIVE_POLL_SECONDS = Settings.model_fields["live_poll_seconds"].default
SUBSCRIPTIONS = 10_000
QUICK_SUBSCRIPTIONS = 200
STUDENTS = 960
SEATS = 1_000
# The tab's two subscriptions on its one websocket.
OPERATIONS = {
    "license": "subscription { licenseChanged { used total remaining display level } }",
    "alerts": "subscription { alertsChanged { kind severity message } }",
}
SUBSCRIPTIONS_PER_TOKEN = 20  # rate_limit.max_subscriptions_per_token's default
# Websockets each client process opens at once (the others wait their turn).
OPENING_AT_ONCE = 50
READY_TIMEOUT_SECONDS = 600
DELIVERY_TIMEOUT_SECONDS = 30
TARGET_DELIVERY_MS = 1_000
TARGET_IDLE_CPU_PERCENT = 5.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- The database -------------------------------------------------------------------------------


def build_database(data_dir: Path, database_url: str, tokens: int) -> tuple[int, list[str]]:
    """The district (its id) and ``tokens`` VIEW_LICENSE tokens of it."""
    from app.runtime import build_service
    from db.models import District
    from licensing.storage import signing
    from licensing.storage.tokens import Permission, create_token

    settings = Settings(data_dir=data_dir, scheduler_enabled=False, database_url=database_url)
    service = build_service(settings, upgrade_schema=True)
    try:
        private_key = signing.generate_signing_key(
            data_dir / "bench-signing-key.pem", settings.trusted_keys_dir / "bench.pub"
        )
        district_id = add_bench_district(
            service, private_key, slug="live", students=STUDENTS, headroom=SEATS - STUDENTS
        )
        secrets = []
        with service.database.write() as session:
            district = session.get(District, district_id)
            assert district is not None
            for number in range(tokens):
                _token, secret = create_token(
                    session,
                    district=district,
                    name=f"tab {number}",
                    permissions={Permission.VIEW_LICENSE},
                    now=service.clock(),
                )
                secrets.append(secret)
        return district_id, secrets
    finally:
        service.database.dispose()


def add_student(data_dir: Path, database_url: str, district_id: int, number: int) -> None:
    """One more active student, imported by another process than the server."""
    from app.runtime import build_service
    from plugins.records import StudentRecord

    settings = Settings(data_dir=data_dir, scheduler_enabled=False, database_url=database_url)
    writer = build_service(settings)
    try:
        writer.apply_roster(
            district_id,
            source="local",
            records=[StudentRecord(source_id=f"late-{number:04d}")],
            replace=False,
        )
    finally:
        writer.database.dispose()


# --- The server's CPU ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process (all its threads) has used, in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resident_mib(pid: int) -> float:
    """The process's resident memory, in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def idle_cpu_percent(pid: int, seconds: float) -> float:
    """The process's CPU over ``seconds`` of waiting, as a percentage of one core."""
    used, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - used) / (time.monotonic() - started)


# --- The clients: one process holds many websockets -----------------------------------------------


class _Subscriptions:
    """What one client process's subscriptions have received."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.first: set[tuple[int, str]] = set()
        self.all_first = asyncio.Event()
        self.armed = False
        self.received: dict[tuple[int, str], float] = {}
        self.all_received = asyncio.Event()
        self.problems: list[str] = []

    def note(self, key: tuple[int, str], message: dict[str, object], at: float) -> None:
        payload = message.get("payload")
        if message.get("type") != "next" or not isinstance(payload, dict) or payload.get("errors"):
            self.problems.append(json.dumps(message)[:300])
            return
        if key not in self.first:
            self.first.add(key)
            if len(self.first) == self.total:
                self.all_first.set()
        elif self.armed and key not in self.received:
            self.received[key] = at
            if len(self.received) == self.total:
                self.all_received.set()

    def arm(self) -> None:
        self.armed = True
        self.received = {}
        self.all_received = asyncio.Event()


async def _hold_connection(
    url: str, secret: str, number: int, subscriptions: _Subscriptions, opening: asyncio.Semaphore
) -> None:
    from websockets.asyncio.client import connect

    try:
        async with opening:
            socket = await connect(
                url,
                subprotocols=["graphql-transport-ws"],
                additional_headers={"Authorization": f"Bearer {secret}"},
                open_timeout=120,
                ping_interval=None,  # a browser sends no pings of its own
                max_queue=None,
            )
            await socket.send(json.dumps({"type": "connection_init", "payload": {}}))
            acknowledged = json.loads(await socket.recv())
            if acknowledged.get("type") != "connection_ack":
                subscriptions.problems.append(json.dumps(acknowledged)[:300])
                return
            for operation, query in OPERATIONS.items():
                await socket.send(
                    json.dumps({"id": operation, "type": "subscribe", "payload": {"query": query}})
                )
        async with socket:
            async for raw in socket:
                at = time.monotonic()
                message = json.loads(raw)
                subscriptions.note((number, str(message.get("id"))), message, at)
    except (OSError, TimeoutError) as error:
        subscriptions.problems.append(f"connection {number}: {type(error).__name__}: {error}")
    except Exception as error:  # a closed websocket, a bad answer: reported, not hidden
        subscriptions.problems.append(f"connection {number}: {type(error).__name__}: {error}")


async def _client(pipe: Connection, url: str, secrets: list[str], first_number: int) -> None:
    subscriptions = _Subscriptions(total=len(secrets) * len(OPERATIONS))
    opening = asyncio.Semaphore(OPENING_AT_ONCE)
    tasks = [
        asyncio.ensure_future(
            _hold_connection(url, secret, first_number + index, subscriptions, opening)
        )
        for index, secret in enumerate(secrets)
    ]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(subscriptions.all_first.wait(), READY_TIMEOUT_SECONDS)
    pipe.send(("ready", len(subscriptions.first), subscriptions.problems[:5]))
    while True:
        command, argument = await asyncio.to_thread(pipe.recv)
        if command == "arm":
            subscriptions.arm()
            pipe.send(("armed", None, None))
        elif command == "collect":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(subscriptions.all_received.wait(), argument)
            times = list(subscriptions.received.values())
            pipe.send(("received", times, subscriptions.problems[:5]))
        else:
            break
    for task in tasks:
        task.cancel()


def client_process(pipe: Connection, url: str, secrets: list[str], first_number: int) -> None:
    """A client process: ``secrets`` has one token per websocket it opens."""
    asyncio.run(_client(pipe, url, secrets, first_number))


@dataclass
class Clients:
    pipes: list[Connection]
    processes: list[multiprocessing.process.BaseProcess]

    def ready(self) -> list[tuple[str, object, object]]:
        """Each client's word once its subscriptions have all had their first message."""
        answers = []
        for pipe in self.pipes:
            if not pipe.poll(READY_TIMEOUT_SECONDS + 60):
                raise SystemExit("a client process did not report its subscriptions")
            answers.append(pipe.recv())
        return answers

    def ask(self, command: str, argument: object = None) -> list[tuple[str, object, object]]:
        for pipe in self.pipes:
            pipe.send((command, argument))
        return [pipe.recv() for pipe in self.pipes]

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop", None))
        for process in self.processes:
            process.join(30)
            if process.is_alive():
                process.kill()


def start_clients(url: str, secrets_by_socket: list[str], processes: int) -> Clients:
    context = multiprocessing.get_context("spawn")  # nothing of this process's state is copied
    share = math.ceil(len(secrets_by_socket) / processes)
    pipes, started = [], []
    for index in range(processes):
        secrets = secrets_by_socket[index * share : (index + 1) * share]
        if not secrets:
            break
        ours, theirs = context.Pipe()
        process = context.Process(
            target=client_process, args=(theirs, url, secrets, index * share), daemon=True
        )
        process.start()
        pipes.append(ours)
        started.append(process)
    return Clients(pipes, started)


# --- The run ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One change: how long each subscription took to receive it, from the commit, in ms."""

    latencies_ms: list[float]
    missing: int
    # The server's CPU time from the commit until the last subscriber had the update.
    server_cpu_seconds: float = float("nan")

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


@dataclass(frozen=True)
class Result:
    subscriptions: int
    sockets: int
    tokens: int
    opened: int
    open_seconds: float
    rest_cpu_percent: float
    idle_cpu_percent: float
    memory_mib: float
    deliveries: list[Delivery]
    problems: list[str]

    @property
    def latencies_ms(self) -> list[float]:
        return [latency for delivery in self.deliveries for latency in delivery.latencies_ms]

    @property
    def missing(self) -> int:
        return sum(delivery.missing for delivery in self.deliveries) + (
            self.subscriptions - self.opened
        )

    def delivery_met(self) -> bool:
        latencies = self.latencies_ms
        return not self.missing and bool(latencies) and max(latencies) <= TARGET_DELIVERY_MS

    def idle_met(self) -> bool:
        return self.idle_cpu_percent < TARGET_IDLE_CPU_PERCENT


def run(arguments: argparse.Namespace, data_dir: Path, database_url: str) -> Result:
    sockets = math.ceil(arguments.subscriptions / len(OPERATIONS))
    sockets_per_token = SUBSCRIPTIONS_PER_TOKEN // len(OPERATIONS)
    tokens = math.ceil(sockets / sockets_per_token)
    log(f"building the {database_name(arguments.postgres)} database ({tokens} tokens)")
    district_id, secrets = build_database(data_dir, database_url, tokens)
    secrets_by_socket = [secrets[number // sockets_per_token] for number in range(sockets)]

    port = free_port()
    url = f"ws://127.0.0.1:{port}/graphql"
    licensing = str(Path(sys.executable).with_name("licensing"))
    command = [licensing, "serve", "--port", str(port), "--workers", "1"]
    ready = f"http://127.0.0.1:{port}/healthz"
    problems: list[str] = []
    with running_server(
        command, data_dir, ready, default_rate_limits=True, database_url=database_url
    ) as server:
        time.sleep(arguments.settle_seconds)
        log(f"the server at rest, no subscription: {arguments.idle_seconds:g} s")
        rest = idle_cpu_percent(server.pid, arguments.idle_seconds)

        log(f"opening {arguments.subscriptions:,} subscriptions on {sockets:,} websockets")
        started = time.monotonic()
        clients = start_clients(url, secrets_by_socket, arguments.clients)
        try:
            answers = clients.ready()
            opened = sum(int(count) for _kind, count, _problems in answers)  # type: ignore[call-overload]
            for _kind, _count, found in answers:
                problems.extend(found)  # type: ignore[arg-type]
            open_seconds = time.monotonic() - started
            log(f"{opened:,} subscriptions open after {open_seconds:.1f} s")

            time.sleep(arguments.settle_seconds)
            log(f"idle with the subscriptions open: {arguments.idle_seconds:g} s")
            idle = idle_cpu_percent(server.pid, arguments.idle_seconds)
            memory = resident_mib(server.pid)

            deliveries = []
            for number in range(arguments.changes):
                clients.ask("arm")
                add_student(data_dir, database_url, district_id, number)
                committed, cpu_before = time.monotonic(), cpu_seconds(server.pid)
                answers = clients.ask("collect", DELIVERY_TIMEOUT_SECONDS)
                server_cpu = cpu_seconds(server.pid) - cpu_before
                latencies = [
                    max(0.0, (at - committed) * 1000)
                    for _kind, times, _problems in answers
                    for at in times  # type: ignore[attr-defined]
                ]
                for _kind, _times, found in answers:
                    problems.extend(found)  # type: ignore[arg-type]
                delivery = Delivery(latencies, opened - len(latencies), server_cpu)
                deliveries.append(delivery)
                log(
                    f"change {number + 1}: {len(latencies):,} received, last after "
                    f"{max(latencies, default=float('nan')):.0f} ms, server CPU {server_cpu:.2f} s"
                )
                time.sleep(arguments.pause_seconds)
        finally:
            clients.stop()
    return Result(
        subscriptions=sockets * len(OPERATIONS),
        sockets=sockets,
        tokens=tokens,
        opened=opened,
        open_seconds=open_seconds,
        rest_cpu_percent=rest,
        idle_cpu_percent=idle,
        memory_mib=memory,
        deliveries=deliveries,
        problems=sorted(set(problems))[:10],
    )


def report(result: Result, arguments: argparse.Namespace) -> str:
    latencies = result.latencies_ms
    delivery = Delivery(latencies, missing=result.missing)
    met = result.delivery_met() and result.idle_met()
    table = markdown_table(
        (
            "subscriptions",
            "websockets",
            "tokens",
            "idle CPU, % of one core",
            "at rest, no subscription",
            "server memory MiB",
            "delivery p50 ms",
            "p99 ms",
            "max ms",
            "missed",
            "target",
        ),
        [
            (
                f"{result.subscriptions:,}",
                f"{result.sockets:,}",
                f"{result.tokens:,}",
                f"{result.idle_cpu_percent:.1f}",
                f"{result.rest_cpu_percent:.1f}",
                f"{result.memory_mib:,.0f}",
                f"{statistics.median(latencies):.0f}" if latencies else "-",
                f"{delivery.percentile(0.99):.0f}",
                f"{max(latencies, default=float('nan')):.0f}",
                f"{result.missing:,}",
                "met" if met else "NOT met",
            )
        ],
        numeric=(True, True, True, True, True, True, True, True, True, True, False),
    )
    changes = ", ".join(
        f"{delivery.percentile(0.5):.0f} / {max(delivery.latencies_ms, default=float('nan')):.0f}"
        f" ms ({delivery.server_cpu_seconds:.2f} s of server CPU)"
        for delivery in result.deliveries
    )
    where = database_name(arguments.postgres)
    verdict = (
        f"Target (SPEC section 8): every subscriber within {TARGET_DELIVERY_MS:,} ms of the "
        f"commit, {'met' if result.delivery_met() else 'NOT met'}; the idle worker under "
        f"{TARGET_IDLE_CPU_PERCENT:g}% of one core, "
        f"{'met' if result.idle_met() else 'NOT met'}."
    )
    lines = [
        f"### Live updates: {result.subscriptions:,} subscriptions on one worker, {where}",
        "",
        f"`.venv/bin/python bench/live.py{' --postgres URL' if arguments.postgres else ''}`"
        f": `licensing serve --workers 1` on {where}, default settings (changes read every "
        f"{LIVE_POLL_SECONDS:g} s, default rate limits). "
        f"{arguments.clients} client process(es) open the websockets as the Licensing tab does "
        "(graphql-transport-ws, `licenseChanged` and `alertsChanged` on each, up to the 20 a "
        f"token may hold), in {result.open_seconds:.0f} s. The server's CPU is measured "
        f"over {arguments.idle_seconds:g} s with nothing changing; then another process adds "
        f"one student to the district {arguments.changes} times, and each change's delivery is "
        "timed from its commit to the moment each subscription's client read the update "
        "(the clients share the machine's 2 cores with the server).",
        "",
        table,
        "",
        f"Each change, delivery p50 / max: {changes}.",
        "",
        verdict,
    ]
    if result.problems:
        lines += ["", "Problems met: " + "; ".join(f"`{problem}`" for problem in result.problems)]
    return "\n".join(lines)


def raise_open_files_limit() -> None:
    """Two descriptors a websocket (the client's and the server's, which inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, help="subscriptions to open (two a socket)")
    parser.add_argument("--idle-seconds", type=float, help="seconds of idle CPU measurement")
    parser.add_argument("--changes", type=int, help="changes to time")
    parser.add_argument("--clients", type=int, help="client processes")
    parser.add_argument("--quick", action="store_true", help="200 subscriptions, a few seconds")
    parser.add_argument("--markdown", action="store_true", help="print the section as markdown")
    parser.add_argument(
        "--postgres",
        metavar="SERVER_URL",
        help="serve from PostgreSQL: a new database on this server (a role that may create one)",
    )
    arguments = parser.parse_args()
    quick = arguments.quick
    arguments.subscriptions = arguments.subscriptions or (
        QUICK_SUBSCRIPTIONS if quick else SUBSCRIPTIONS
    )
    arguments.idle_seconds = arguments.idle_seconds or (0.5 if quick else 20.0)
    arguments.changes = arguments.changes or (2 if quick else 3)
    arguments.clients = arguments.clients or (1 if quick else 2)
    arguments.settle_seconds = 0.25 if quick else 5.0
    # Between changes, so that one change's updates are not coalesced with the next one's.
    arguments.pause_seconds = 0.3 if quick else 1.0
    raise_open_files_limit()
    for name in [name for name in os.environ if name.startswith("LICENSING_")]:
        del os.environ[name]
    data_dir = Path(tempfile.mkdtemp(prefix="licensing-bench-live-"))
    try:
        with contextlib.ExitStack() as stack:
            database_url = (
                stack.enter_context(fresh_database(arguments.postgres))
                if arguments.postgres
                else ""
            )
            result = run(arguments, data_dir, database_url)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    show(report(result, arguments), as_markdown=arguments.markdown)
    if result.missing or result.problems:
        log(f"{result.missing} subscription(s) missed an update; problems: {result.problems}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
