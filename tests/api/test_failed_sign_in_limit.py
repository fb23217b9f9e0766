"""Failed sign-ins are limited per client address, across workers, without locking others out."""

from __future__ import annotations

import httpx
import pytest

from app.factory import create_app
from app.runtime import build_service

pytestmark = pytest.mark.anyio

TAB = {"X-Requested-With": "licensing-tab"}
LICENSE_QUERY = {"query": "{ license { display } }"}
LIMIT = 10  # sign_in.failures_per_address's default
BAD_TOKEN = "m1t1_" + "x" * 43


def client_from(service, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(service), client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="https://testserver")


async def tab_sign_in(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/session", json={"token": token}, headers=TAB)


async def bearer(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post(
        "/graphql", json=LICENSE_QUERY, headers={"Authorization": f"Bearer {token}"}
    )


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "SIGN_IN_THROTTLED"
    assert 1 <= int(response.headers["retry-after"]) <= 60


async def test_an_address_is_refused_after_ten_failures_a_minute(make_district, service, clock):
    district = await make_district(active=10)
    async with client_from(service, "203.0.113.7") as attacker:
        # Bad tokens on /session and as bearer tokens both count.
        for attempt in range(LIMIT):
            answer = await (tab_sign_in if attempt % 2 else bearer)(attacker, BAD_TOKEN)
            assert answer.status_code == 401, answer.text

        assert_throttled(await tab_sign_in(attacker, BAD_TOKEN))
        assert_throttled(await bearer(attacker, BAD_TOKEN))
        # From that address, even a good token waits: guessing gains nothing.
        assert_throttled(await tab_sign_in(attacker, district.manager_token))
        assert_throttled(await bearer(attacker, district.viewer_token))

        # Someone else, elsewhere, signs in as usual.
        async with client_from(service, "198.51.100.20") as neighbour:
            assert (await tab_sign_in(neighbour, district.manager_token)).status_code == 200
            assert (await bearer(neighbour, district.viewer_token)).status_code == 200
            assert (await bearer(neighbour, BAD_TOKEN)).status_code == 401

        # Once the window is over, the address may sign in again.
        clock.advance(seconds=61)
        assert (await tab_sign_in(attacker, district.manager_token)).status_code == 200
        assert (await bearer(attacker, BAD_TOKEN)).status_code == 401


async def test_the_count_is_shared_by_every_worker(make_district, service, settings, clock):
    district = await make_district(active=10)
    other_worker = build_service(settings, clock=clock)
    try:
        async with (
            client_from(service, "203.0.113.9") as first,
            client_from(other_worker, "203.0.113.9") as second,
        ):
            for attempt in range(LIMIT):
                worker = first if attempt % 2 else second
                assert (await bearer(worker, BAD_TOKEN)).status_code == 401
            # Each worker saw only half the failures; together they reach the limit.
            assert_throttled(await bearer(first, BAD_TOKEN))
            assert_throttled(await bearer(second, BAD_TOKEN))
            assert_throttled(await bearer(second, district.viewer_token))
    finally:
        other_worker.database.dispose()


async def test_successful_sign_ins_are_never_counted(make_district, service):
    district = await make_district(active=10)
    async with client_from(service, "192.0.2.44") as http:
        for _ in range(3 * LIMIT):
            assert (await bearer(http, district.viewer_token)).status_code == 200
        assert (await tab_sign_in(http, district.manager_token)).status_code == 200
