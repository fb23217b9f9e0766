"""Live updates: graphql-transport-ws subscriptions over a real websocket, on a real server.

The server runs under uvicorn on loopback; changes are made through a second service with its own
engine on the same SQLite file, as another worker or host would make them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any

import anyio
import pytest
from sqlalchemy import event
from sqlmodel import select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.factory import create_app
from app.runtime import build_service
from db.models import ApiToken
from db.session import lock_district
from licensing.orchestration.service import LicensingService
from licensing.storage.district_state import reevaluate_alerts
from licensing.storage.threshold import save_threshold
from licensing.storage.tokens import hash_token, revoke_token
from tests.fakes.serve import serve
from tests.utils.districts import students
from tests.utils.graphql import graphql

pytestmark = pytest.mark.anyio

PROTOCOL = "graphql-transport-ws"
DELIVERY_SECONDS = 2.0  # the acceptance bound: a change reaches subscribers this fast
REPLY_SECONDS = 5.0  # any other reply (generous, for a busy machine)
LICENSE_CHANGED = "subscription { licenseChanged { used total remaining display } }"
ALERTS_CHANGED = "subscription { alertsChanged { kind severity message resolvedAt } }"


class Subscriber:
    """A graphql-transport-ws client on one websocket."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self, timeout: float = REPLY_SECONDS) -> dict[str, Any]:
        with anyio.fail_after(timeout):
            return json.loads(await self.connection.recv())

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        await self.send({"type": "connection_init", "payload": payload or {}})
        return await self.receive()

    async def subscribe(self, query: str, operation_id: str = "1") -> None:
        await self.send({"id": operation_id, "type": "subscribe", "payload": {"query": query}})

    async def next_data(self, operation_id: str = "1", timeout: float = REPLY_SECONDS) -> Any:
        message = await self.receive(timeout)
        assert message["type"] == "next", message
        assert message["id"] == operation_id
        assert "errors" not in message["payload"], message["payload"]
        return message["payload"]["data"]

    async def assert_silent(self, seconds: float) -> None:
        """Nothing arrives for ``seconds``."""
        with anyio.move_on_after(seconds):
            message = await self.connection.recv()
            pytest.fail(f"expected no message, got {message}")


@contextmanager
def served(service: LicensingService) -> Iterator[str]:
    with serve(create_app(service), websockets=True) as base_url:
        yield base_url.replace("http://", "ws://") + "/graphql"


@asynccontextmanager
async def subscriber(url: str, token: str | None = None) -> AsyncIterator[Subscriber]:
    """Connected and signed in: with ``token`` in the handshake header, else in connection_init
    (the caller sends it)."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with connect(
        url, subprotocols=[PROTOCOL], additional_headers=headers, open_timeout=5
    ) as connection:
        yield Subscriber(connection)


@pytest.fixture
def other_worker(settings, clock) -> Iterator[LicensingService]:
    """A second service on the same database file: another process's engine and connections."""
    worker = build_service(settings, clock=clock)
    yield worker
    worker.database.dispose()


async def add_students(worker: LicensingService, district_id: int, count: int, prefix: str) -> None:
    def apply() -> None:
        worker.apply_roster(
            district_id, source="local", records=students(count, prefix=prefix), replace=False
        )

    await anyio.to_thread.run_sync(apply)


async def test_first_message_is_the_current_license(service, make_district):
    district = await make_district(seats=100, active=40)

    with served(service) as url:
        async with subscriber(url) as ws:
            ack = await ws.init({"Authorization": f"Bearer {district.viewer_token}"})
            assert ack["type"] == "connection_ack"
            await ws.subscribe(LICENSE_CHANGED)

            first = await ws.next_data()

    assert first == {
        "licenseChanged": {"used": 40, "total": 100, "remaining": 60, "display": "40 / 100"}
    }


async def test_a_roster_change_through_another_worker_arrives_within_two_seconds(
    service, make_district, other_worker
):
    district = await make_district(seats=100, active=40)

    with served(service) as url:
        async with subscriber(url, district.viewer_token) as ws:
            assert (await ws.init())["type"] == "connection_ack"
            await ws.subscribe(LICENSE_CHANGED)
            assert (await ws.next_data())["licenseChanged"]["used"] == 40

            await add_students(other_worker, district.id, 7, prefix="late-")
            started = anyio.current_time()
            update = await ws.next_data(timeout=DELIVERY_SECONDS)
            elapsed = anyio.current_time() - started

    assert update["licenseChanged"]["used"] == 47
    assert update["licenseChanged"]["remaining"] == 53
    assert elapsed < DELIVERY_SECONDS


async def test_a_burst_of_changes_arrives_as_few_updates_ending_at_the_last(
    service, make_district, other_worker
):
    district = await make_district(seats=100, active=10)
    # Long enough for several changes to fall in one interval, however busy the machine.
    service.settings.live_poll_seconds = 1.0

    with served(service) as url:
        async with subscriber(url, district.viewer_token) as ws:
            await ws.init()
            await ws.subscribe(LICENSE_CHANGED)
            await ws.next_data()

            for batch in range(5):
                await add_students(other_worker, district.id, 2, prefix=f"burst{batch}-")
            seen = [(await ws.next_data())["licenseChanged"]["used"]]
            while seen[-1] != 20:
                seen.append((await ws.next_data())["licenseChanged"]["used"])
            await ws.assert_silent(1.0)

    assert seen == sorted(seen)
    assert len(seen) < 5


async def test_alerts_changed_delivers_licenses_low_when_the_threshold_is_crossed(
    service, make_district, other_worker
):
    district = await make_district(seats=100, active=40, threshold=50)

    with served(service) as url:
        async with subscriber(url, district.viewer_token) as ws:
            await ws.init()
            await ws.subscribe(ALERTS_CHANGED)
            assert await ws.next_data() == {"alertsChanged": []}

            await add_students(other_worker, district.id, 15, prefix="low-")
            update = await ws.next_data()

    [alert] = update["alertsChanged"]
    assert alert["kind"] == "LICENSES_LOW"
    assert alert["resolvedAt"] is None
    assert "45" in alert["message"]


async def test_two_subscriptions_on_one_connection(service, make_district, other_worker):
    district = await make_district(seats=100, active=40, threshold=50)

    with served(service) as url:
        async with subscriber(url, district.viewer_token) as ws:
            await ws.init()
            await ws.subscribe(LICENSE_CHANGED, "license")
            await ws.subscribe(ALERTS_CHANGED, "alerts")
            first = {}
            for _ in range(2):
                message = await ws.receive()
                first[message["id"]] = message["payload"]["data"]
            assert first["license"]["licenseChanged"]["used"] == 40
            assert first["alerts"] == {"alertsChanged": []}

            await add_students(other_worker, district.id, 15, prefix="both-")
            updates = {}
            for _ in range(2):
                message = await ws.receive()
                updates[message["id"]] = message["payload"]["data"]

    assert updates["license"]["licenseChanged"]["used"] == 55
    assert [alert["kind"] for alert in updates["alerts"]["alertsChanged"]] == ["LICENSES_LOW"]


async def test_no_token_in_connection_init_is_refused_without_data(service, make_district):
    await make_district(seats=100, active=40)

    with served(service) as url:
        async with subscriber(url) as ws:
            await ws.send({"type": "connection_init", "payload": {}})
            await ws.subscribe(LICENSE_CHANGED)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.receive()

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


@pytest.mark.parametrize(
    "payload",
    [
        {"Authorization": "Bearer m1t1_not-a-real-token"},
        {"Authorization": "m1t1_no-scheme"},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": 12345},
    ],
)
async def test_a_bad_token_in_connection_init_is_refused_without_data(
    service, make_district, payload
):
    await make_district(seats=100, active=40)

    with served(service) as url:
        async with subscriber(url) as ws:
            await ws.send({"type": "connection_init", "payload": payload})
            with pytest.raises(ConnectionClosed) as closed:
                await ws.receive()

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_subscribing_before_signing_in_is_refused(service, make_district):
    await make_district(seats=100, active=40)

    with served(service) as url:
        async with subscriber(url) as ws:
            await ws.subscribe(LICENSE_CHANGED)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.receive()

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_a_bad_token_in_the_handshake_header_is_refused_with_401(service, make_district):
    await make_district(seats=100, active=40)

    with served(service) as url, pytest.raises(InvalidStatus) as refused:
        async with subscriber(url, "m1t1_not-a-real-token"):
            pytest.fail("the handshake should have been refused")

    response = refused.value.response
    assert response.status_code == 401
    body = json.loads(response.body)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "data" not in body


async def test_a_revoked_token_receives_nothing_more(service, make_district, other_worker, clock):
    district = await make_district(seats=100, active=40)

    with served(service) as url:
        async with subscriber(url, district.viewer_token) as ws:
            await ws.init()
            await ws.subscribe(LICENSE_CHANGED)
            await ws.next_data()

            def revoke() -> None:
                with other_worker.database.write() as session:
                    token = session.exec(
                        select(ApiToken).where(
                            ApiToken.token_hash == hash_token(district.viewer_token)
                        )
                    ).one()
                    assert revoke_token(
                        session, district_id=district.id, token_id=token.id, now=clock()
                    )

            await anyio.to_thread.run_sync(revoke)
            await add_students(other_worker, district.id, 3, prefix="after-")
            ended = [await ws.receive(), await ws.receive()]
            await ws.subscribe("subscription { alertsChanged { kind } }", "2")
            refused = await ws.receive()

    # The running subscription ends with an error instead of the update...
    assert ended[0]["type"] == "next"
    assert ended[0]["payload"]["data"] is None
    assert ended[0]["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert ended[1] == {"id": "1", "type": "complete"}
    # ...and the connection starts nothing more.
    assert refused["id"] == "2"
    assert refused["type"] == "error"
    assert refused["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_district_never_receives_another_districts_changes(
    service, make_district, other_worker
):
    riverside = await make_district("riverside", seats=100, active=40)
    lakeside = await make_district("lakeside", seats=500, active=300)

    with served(service) as url:
        async with subscriber(url, riverside.viewer_token) as ws:
            await ws.init()
            await ws.subscribe(LICENSE_CHANGED, "license")
            await ws.subscribe(ALERTS_CHANGED, "alerts")
            for _ in range(2):
                await ws.receive()

            await add_students(other_worker, lakeside.id, 250, prefix="lake-")
            await ws.assert_silent(1.5)

            await add_students(other_worker, riverside.id, 1, prefix="river-")
            update = await ws.next_data("license")

    assert update["licenseChanged"] == {
        "used": 41,
        "total": 100,
        "remaining": 59,
        "display": "41 / 100",
    }


async def test_a_subscription_over_http_is_refused_with_400(client, make_district):
    district = await make_district(seats=100, active=40)

    response = await graphql(client, district.viewer_token, LICENSE_CHANGED)

    assert response.status_code == 400
    assert "subscriptions are not allowed" in response.text


async def test_bad_tokens_in_connection_init_count_as_failed_sign_ins(service, make_district):
    district = await make_district(seats=100, active=40)

    with served(service) as url:
        for _ in range(10):  # sign_in.failures_per_address
            async with subscriber(url) as ws:
                await ws.send(
                    {"type": "connection_init", "payload": {"Authorization": "Bearer m1t1_bad"}}
                )
                with pytest.raises(ConnectionClosed):
                    await ws.receive()
        # From that address, even a good token now waits.
        with pytest.raises(InvalidStatus) as refused:
            async with subscriber(url, district.viewer_token):
                pytest.fail("the handshake should have been refused")

    response = refused.value.response
    assert response.status_code == 429
    assert json.loads(response.body)["errors"][0]["extensions"]["code"] == "SIGN_IN_THROTTLED"
    assert int(response.headers["Retry-After"]) >= 1
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


# --- One reader of the change log per worker, however many subscriptions -------------------------


@asynccontextmanager
async def subscribed(
    url: str, token: str, sockets: int, per_socket: int, query: str = LICENSE_CHANGED
) -> AsyncIterator[list[Subscriber]]:
    """``sockets`` websockets of ``per_socket`` subscriptions each (ids "0", "1"...), all past
    their first message."""
    async with AsyncExitStack() as stack:
        opened = []
        for _ in range(sockets):
            ws = await stack.enter_async_context(subscriber(url, token))
            assert (await ws.init())["type"] == "connection_ack"
            for number in range(per_socket):
                await ws.subscribe(query, str(number))
                await ws.next_data(str(number))
            opened.append(ws)
        yield opened


async def next_of_each(ws: Subscriber, count: int, timeout: float) -> dict[str, Any]:
    """The next message of each of the socket's ``count`` subscriptions, by id (they arrive in
    any order)."""
    received: dict[str, Any] = {}
    with anyio.fail_after(timeout):
        while len(received) < count:
            message = await ws.receive()
            assert message["type"] == "next", message
            assert message["id"] not in received, message
            received[message["id"]] = message["payload"]["data"]
    return received


async def test_every_subscription_of_a_district_receives_a_change_once_and_others_nothing(
    service, make_district, other_worker
):
    riverside = await make_district("riverside", seats=100, active=40)
    lakeside = await make_district("lakeside", seats=500, active=300)
    service.settings.rate_limit.max_subscriptions_per_token = 40

    with served(service) as url:
        async with (
            subscribed(url, riverside.viewer_token, sockets=4, per_socket=8) as river,
            subscribed(url, lakeside.viewer_token, sockets=2, per_socket=5) as lake,
        ):
            await add_students(other_worker, riverside.id, 3, prefix="late-")
            updates = [
                update
                for ws in river
                for update in (await next_of_each(ws, 8, DELIVERY_SECONDS)).values()
            ]
            # Nothing more for them, and nothing at all for the other district's.
            for ws in river + lake:
                await ws.assert_silent(0.3)

    assert len(updates) == 32
    assert all(update["licenseChanged"]["used"] == 43 for update in updates)


async def test_while_nothing_changes_the_worker_reads_the_log_once_an_interval(
    service, make_district
):
    """K subscriptions, one statement an interval: never one per subscription."""
    district = await make_district(seats=100, active=40)
    interval = 0.05
    service.settings.live_poll_seconds = interval
    statements: list[str] = []
    enough = threading.Event()

    def count(_connection, _cursor, statement, *_args) -> None:
        if statement.strip().upper() in ("BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"):
            return  # a transaction's bounds (SQLite's read transaction), not a read
        statements.append(statement)
        if len(statements) >= 8:
            enough.set()

    with served(service) as url:
        async with subscribed(url, district.viewer_token, sockets=2, per_socket=6):
            event.listen(service.database.engine, "before_cursor_execute", count)
            try:
                started = anyio.current_time()
                await anyio.to_thread.run_sync(enough.wait, REPLY_SECONDS)
                elapsed = anyio.current_time() - started
                seen = list(statements)
            finally:
                event.remove(service.database.engine, "before_cursor_execute", count)

    assert len(seen) >= 8
    assert all("FROM change_event" in statement for statement in seen), seen
    assert len(seen) <= elapsed / interval + 2  # 12 subscriptions polling would be 12x that


async def test_subscriptions_of_one_token_are_charged_together_for_the_time_held(
    service, make_district, clock, client
):
    district = await make_district(seats=100, active=40)
    limits = service.settings.rate_limit
    limits.restore_rate = 0.001  # the clock moves by a minute below: refills must not hide it
    held = 3

    async def remaining() -> tuple[int, int]:
        response = await graphql(client, district.viewer_token, "{ license { display } }")
        cost = response.json()["extensions"]["cost"]
        return cost["remaining"], cost["requested"]

    with served(service) as url:
        async with subscribed(url, district.viewer_token, sockets=1, per_socket=held):
            before, _ = await remaining()
            clock.advance(minutes=1)
            # The next charge (after the next read of the log) draws the minute of all three.
            with anyio.fail_after(REPLY_SECONDS):
                spent = 0
                while True:
                    now, cost = await remaining()
                    spent += cost
                    if before - now > spent:
                        break
                    await anyio.sleep(0.05)  # waiting for the charge, not letting time pass

    per_minute = limits.subscription_points_per_minute
    assert before - now == held * per_minute + spent


async def test_a_change_committed_after_a_newer_one_of_another_district_still_arrives(
    service, make_district, other_worker, clock
):
    """On PostgreSQL an id is taken when a change is written and seen when it commits, so a
    district's change can appear after a newer id of another district was read."""
    if service.database.is_sqlite:
        pytest.skip("SQLite writes one transaction at a time: ids are committed in order")
    riverside = await make_district("riverside", seats=100, active=40, threshold=50)
    lakeside = await make_district("lakeside", seats=500, active=300)
    written, release = threading.Event(), threading.Event()

    def raise_threshold_slowly() -> None:
        with other_worker.database.write() as session:
            lock_district(session, riverside.id)
            save_threshold(session, district_id=riverside.id, value=70, now=clock())
            reevaluate_alerts(
                session, district_id=riverside.id, now=clock(), policy=other_worker.alert_policy
            )
            session.flush()  # its change-log ids are taken now, and seen at the commit
            written.set()
            release.wait(REPLY_SECONDS)

    with served(service) as url:
        async with (
            subscribed(url, riverside.viewer_token, 1, 1, ALERTS_CHANGED) as [river],
            subscribed(url, lakeside.viewer_token, 1, 1) as [lake],
            anyio.create_task_group() as tasks,
        ):
            tasks.start_soon(anyio.to_thread.run_sync, raise_threshold_slowly)
            await anyio.to_thread.run_sync(written.wait, REPLY_SECONDS)
            await add_students(other_worker, lakeside.id, 1, prefix="newer-")
            assert (await lake.next_data("0", DELIVERY_SECONDS))["licenseChanged"]["used"] == 301
            release.set()
            update = await river.next_data("0", DELIVERY_SECONDS)

    assert [alert["kind"] for alert in update["alertsChanged"]] == ["LICENSES_LOW"]
