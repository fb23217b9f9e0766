"""Tokens that expire: they sign in until their expiry and are refused like a revoked token from
that moment on, at every door (bearer requests, the tab's sign-in and its sessions, websockets),
with a 401 that says the token expired. Time passes on the injected clock only."""

from __future__ import annotations

from datetime import datetime, timedelta
from http.cookies import SimpleCookie

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from graph.auth import SESSION_COOKIE
from licensing.storage.tokens import Permission, list_tokens, withdraw_token
from tests.api.test_subscriptions import (
    LICENSE_CHANGED,
    served,
    subscriber,
)
from tests.api.test_tab_websocket import http_base, start_session, tab_socket
from tests.utils.districts import token_for
from tests.utils.graphql import graphql, graphql_data

pytestmark = pytest.mark.anyio

TAB = {"X-Requested-With": "licensing-tab"}
LICENSE_QUERY = "{ license { display } }"
VIEWER_QUERY = "{ viewer { token { name expiresAt } } }"
FAILED_SIGN_IN_LIMIT = 10  # sign_in.failures_per_address's default


def expiring_token(service, district, expires_at: datetime, *, name: str = "expiring") -> str:
    return token_for(
        service, district.id, Permission.VIEW_LICENSE, name=name, expires_at=expires_at
    )


def assert_token_expired(response: httpx.Response, expires_at: datetime) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert "data" not in body or body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "TOKEN_EXPIRED"
    stamp = expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert error["extensions"]["expiresAt"] == stamp
    assert f"expired at {stamp}" in error["message"]
    assert "new token" in error["message"]


async def test_a_token_works_until_its_expiry_and_is_refused_from_that_moment(
    client, make_district, service, clock
):
    district = await make_district(active=10)
    expires_at = clock() + timedelta(hours=1)
    token = expiring_token(service, district, expires_at)

    # Signed in many times: the worker remembers it, and must still drop it at its expiry.
    for _ in range(5):
        assert (await graphql(client, token, LICENSE_QUERY)).status_code == 200
    clock.set(expires_at - timedelta(seconds=1))
    assert (await graphql(client, token, LICENSE_QUERY)).status_code == 200

    clock.set(expires_at)

    refused = await graphql(client, token, LICENSE_QUERY)
    assert_token_expired(refused, expires_at)
    assert refused.headers["www-authenticate"].lower().startswith("bearer")
    assert_token_expired(
        await client.get(
            "/graphql",
            params={"query": LICENSE_QUERY},
            headers={"Authorization": f"Bearer {token}"},
        ),
        expires_at,
    )
    # The district's other tokens go on.
    assert (await graphql(client, district.viewer_token, LICENSE_QUERY)).status_code == 200


async def test_the_report_download_refuses_an_expired_token(client, make_district, service, clock):
    district = await make_district(active=10)
    expires_at = clock() + timedelta(minutes=5)
    token = token_for(service, district.id, Permission.MANAGE_SETTINGS, expires_at=expires_at)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/reports/active-students.csv", headers=headers)).status_code == 200

    clock.advance(minutes=5)

    assert_token_expired(
        await client.get("/reports/active-students.csv", headers=headers), expires_at
    )


async def test_viewer_says_when_the_token_expires(client, make_district, service, clock):
    district = await make_district(active=10)
    expires_at = clock() + timedelta(days=30)
    token = expiring_token(service, district, expires_at, name="nightly report")

    expiring = await graphql_data(client, token, VIEWER_QUERY)
    lasting = await graphql_data(client, district.viewer_token, VIEWER_QUERY)

    answered = expiring["viewer"]["token"]
    assert answered["name"] == "nightly report"
    assert datetime.fromisoformat(answered["expiresAt"]) == expires_at
    assert lasting["viewer"]["token"]["expiresAt"] is None


async def test_a_revoked_token_is_refused_as_revoked_even_after_its_expiry(
    client, make_district, service, clock
):
    district = await make_district(active=10)
    expires_at = clock() + timedelta(hours=1)
    token = expiring_token(service, district, expires_at)
    with service.database.read() as session:
        [listed] = [
            row
            for row in list_tokens(session, district_id=district.id)
            if row.expires_at == expires_at
        ]
    withdraw_token(
        service.database, district_id=district.id, token_id=listed.id, actor="test", now=clock()
    )
    clock.set(expires_at + timedelta(hours=1))

    refused = await graphql(client, token, LICENSE_QUERY)

    assert refused.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_an_expired_token_counts_as_a_failed_sign_in_like_a_revoked_one(
    client, make_district, service, clock
):
    district = await make_district(active=10)
    expires_at = clock() + timedelta(minutes=1)
    token = expiring_token(service, district, expires_at)
    clock.set(expires_at)

    for _ in range(FAILED_SIGN_IN_LIMIT):
        assert (await graphql(client, token, LICENSE_QUERY)).status_code == 401

    throttled = await graphql(client, district.viewer_token, LICENSE_QUERY)
    assert throttled.status_code == 429
    assert throttled.json()["errors"][0]["extensions"]["code"] == "SIGN_IN_THROTTLED"


# ---------------------------------------------------------------- the Licensing tab


async def test_the_tab_refuses_to_sign_in_with_an_expired_token(
    client, make_district, service, clock
):
    district = await make_district(active=10)
    expires_at = clock() + timedelta(minutes=10)
    token = expiring_token(service, district, expires_at)
    clock.advance(minutes=10)

    refused = await client.post("/session", json={"token": token}, headers=TAB)

    assert_token_expired(refused, expires_at)
    assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")


async def test_a_tab_session_ends_at_its_tokens_expiry(
    client, client_factory, make_district, service, clock
):
    district = await make_district(active=10)
    # Two hours: sooner than the session's own 12-hour lifetime.
    expires_at = clock() + timedelta(hours=2)
    token = token_for(service, district.id, Permission.MANAGE_SETTINGS, expires_at=expires_at)
    signed_in = await client.post("/session", json={"token": token}, headers=TAB)
    assert signed_in.status_code == 200, signed_in.text
    cookie = signed_in.cookies[SESSION_COOKIE]
    # The browser drops the cookie when the token expires, too.
    assert int(SimpleCookie(signed_in.headers["set-cookie"])[SESSION_COOKIE]["max-age"]) == 7200

    async def as_tab(method: str, path: str, **kwargs) -> httpx.Response:
        async with client_factory(service) as tab:
            headers = {**TAB, "Cookie": f"{SESSION_COOKIE}={cookie}"}
            return await tab.request(method, path, headers=headers, **kwargs)

    # The session reports the token's expiry as its own viewer's.
    viewer = await as_tab("POST", "/graphql", json={"query": VIEWER_QUERY})
    assert datetime.fromisoformat(viewer.json()["data"]["viewer"]["token"]["expiresAt"]) == (
        expires_at
    )
    # Used every 20 minutes (never idle), it lasts until one second before the token's expiry.
    while clock() + timedelta(minutes=20) < expires_at:
        clock.advance(minutes=20)
        assert (await as_tab("GET", "/session")).status_code == 200
    clock.set(expires_at - timedelta(seconds=1))
    assert (await as_tab("POST", "/graphql", json={"query": LICENSE_QUERY})).status_code == 200

    clock.set(expires_at)

    ended = await as_tab("GET", "/session")
    assert ended.status_code == 401
    assert "session has ended" in ended.json()["errors"][0]["message"]
    assert (await as_tab("POST", "/graphql", json={"query": LICENSE_QUERY})).status_code == 401
    # Signing in again with the same token says why it cannot.
    again = await client.post("/session", json={"token": token}, headers=TAB)
    assert_token_expired(again, expires_at)


# ---------------------------------------------------------------- websockets


async def test_an_open_subscription_ends_when_its_token_expires(service, make_district, clock):
    district = await make_district(seats=100, active=40)
    expires_at = clock() + timedelta(minutes=10)
    token = expiring_token(service, district, expires_at)

    with served(service) as url:
        async with subscriber(url, token) as ws:
            assert (await ws.init())["type"] == "connection_ack"
            await ws.subscribe(LICENSE_CHANGED)
            assert (await ws.next_data())["licenseChanged"]["used"] == 40

            clock.set(expires_at)  # nothing changes in the district: the expiry alone ends it
            ended = [await ws.receive(), await ws.receive()]
            await ws.subscribe("subscription { alertsChanged { kind } }", "2")
            refused = await ws.receive()

    # Ended as a revoked token's subscription ends: an error instead of an update, then complete.
    assert ended[0]["type"] == "next"
    assert ended[0]["payload"]["data"] is None
    [error] = ended[0]["payload"]["errors"]
    assert error["extensions"]["code"] == "TOKEN_EXPIRED"
    assert "expired" in error["message"]
    assert ended[1] == {"id": "1", "type": "complete"}
    # ...and the connection starts nothing more.
    assert refused["id"] == "2"
    assert refused["type"] == "error"
    assert refused["payload"][0]["extensions"]["code"] == "TOKEN_EXPIRED"


async def test_an_expired_token_opens_no_websocket(service, make_district, clock):
    district = await make_district(seats=100, active=40)
    expires_at = clock() + timedelta(minutes=10)
    token = expiring_token(service, district, expires_at)
    clock.set(expires_at)

    with served(service) as url:
        with pytest.raises(InvalidStatus) as refused:
            async with subscriber(url, token):
                pytest.fail("the handshake should have been refused")
        async with subscriber(url) as ws:
            await ws.send(
                {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
            )
            with pytest.raises(ConnectionClosed) as closed:
                await ws.receive()

    response = refused.value.response
    assert response.status_code == 401
    assert b"TOKEN_EXPIRED" in response.body
    # In connection_init, as for any token that does not sign in.
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_the_tabs_socket_ends_when_its_sessions_token_expires(service, make_district, clock):
    district = await make_district(seats=100, active=40)
    expires_at = clock() + timedelta(minutes=10)
    token = expiring_token(service, district, expires_at)

    with served(service) as url:
        base = http_base(url)
        session = await start_session(base, token)
        async with tab_socket(url, session, origin=base) as ws:
            assert (await ws.init())["type"] == "connection_ack"
            await ws.subscribe(LICENSE_CHANGED)
            await ws.next_data()

            clock.set(expires_at)
            message = await ws.receive()

        with pytest.raises(InvalidStatus) as refused:
            async with tab_socket(url, session, origin=base):
                pass

    assert message["type"] == "next"
    assert message["payload"]["errors"][0]["extensions"]["code"] == "TOKEN_EXPIRED"
    assert refused.value.response.status_code == 401
