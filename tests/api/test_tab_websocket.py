"""The Licensing tab's own websocket signs in with its session cookie, but only from the tab's
origin: a page elsewhere (or a client naming no origin) is refused at the handshake, and the
connection receives nothing more once the session ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.api.test_subscriptions import (
    LICENSE_CHANGED,
    PROTOCOL,
    Subscriber,
    add_students,
    other_worker,
    served,
)

pytestmark = pytest.mark.anyio

COOKIE = "__Host-licensing_session"
__all__ = ["other_worker"]  # a fixture: a second service on the same database


async def start_session(base_url: str, token: str) -> str:
    async with httpx.AsyncClient(base_url=base_url) as http:
        answer = await http.post("/session", json={"token": token}, headers={"Origin": base_url})
        assert answer.status_code == 200, answer.text
        return answer.cookies[COOKIE]


async def end_session(base_url: str, session: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        answer = await http.delete(
            "/session", headers={"Origin": base_url, "Cookie": f"{COOKIE}={session}"}
        )
        assert answer.status_code == 200


@asynccontextmanager
async def tab_socket(url: str, session: str, origin: str | None) -> AsyncIterator[Subscriber]:
    headers = {"Cookie": f"{COOKIE}={session}"}
    async with connect(
        url, subprotocols=[PROTOCOL], additional_headers=headers, origin=origin, open_timeout=5
    ) as connection:
        yield Subscriber(connection)


def http_base(ws_url: str) -> str:
    return ws_url.replace("ws://", "http://").removesuffix("/graphql")


async def test_the_tabs_socket_signs_in_with_the_session_cookie(service, make_district):
    district = await make_district(seats=100, active=40)
    with served(service) as url:
        base = http_base(url)
        session = await start_session(base, district.viewer_token)
        async with tab_socket(url, session, origin=base) as ws:
            ack = await ws.init()  # no token in connection_init: the cookie signed it in
            assert ack["type"] == "connection_ack"
            await ws.subscribe(LICENSE_CHANGED)
            first = await ws.next_data()
    assert first["licenseChanged"]["display"] == "40 / 100"


@pytest.mark.parametrize("origin", ["https://evil.test", None])
async def test_a_cookie_socket_from_another_origin_is_refused_at_the_handshake(
    service, make_district, origin
):
    district = await make_district(seats=100, active=40)
    with served(service) as url:
        session = await start_session(http_base(url), district.manager_token)
        with pytest.raises(InvalidStatus) as refused:
            async with tab_socket(url, session, origin=origin):
                pass
    assert refused.value.response.status_code == 403
    assert b"CSRF" in refused.value.response.body


async def test_signing_out_ends_the_tabs_socket(service, make_district, other_worker):
    district = await make_district(seats=100, active=40)
    with served(service) as url:
        base = http_base(url)
        session = await start_session(base, district.manager_token)
        async with tab_socket(url, session, origin=base) as ws:
            assert (await ws.init())["type"] == "connection_ack"
            await ws.subscribe(LICENSE_CHANGED)
            await ws.next_data()

            await end_session(base, session)
            await add_students(other_worker, district.id, 5, prefix="late-")
            message = await ws.receive()
            assert message["type"] == "next"
            assert message["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

        # The ended session's cookie opens no new socket.
        with pytest.raises(InvalidStatus) as refused:
            async with tab_socket(url, session, origin=base):
                pass
    assert refused.value.response.status_code == 401
