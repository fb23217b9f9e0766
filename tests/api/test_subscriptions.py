"""Live updates: graphql-transport-ws subscriptions over a real websocket, on a real server.

The server runs under uvicorn on loopback; changes are made through a second service with its own
engine on the same SQLite file, as another worker or host would make them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import pytest
from sqlmodel import select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.factory import create_app
from app.runtime import build_service
from db.models import ApiToken
from licensing.orchestration.service import LicensingService
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
