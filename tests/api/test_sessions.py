"""The Licensing tab's sessions: a random id in a __Host- cookie, never the token; ended by
idle and absolute expiry, by sign-out on the server, and by revoking the token."""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest
from sqlmodel import select

from db.models import ApiToken, DashboardSession, metadata
from graph.auth import SESSION_COOKIE
from licensing.storage.tokens import hash_token
from tests.utils.cli import run

pytestmark = pytest.mark.anyio

TAB = {"X-Requested-With": "licensing-tab"}
LICENSE_QUERY = {"query": "{ license { display } }"}


async def sign_in(client, token: str) -> str:
    """Sign in as the tab does; the session cookie's value."""
    response = await client.post("/session", json={"token": token}, headers=TAB)
    assert response.status_code == 200, response.text
    return response.cookies[SESSION_COOKIE]


async def as_tab(client_factory, service, cookie: str, method: str = "GET", path: str = "/session"):
    """A request carrying only this cookie value, from a client with no cookies of its own
    (what someone holding a copy of the cookie would send)."""
    async with client_factory(service) as other:
        headers = {**TAB, "Cookie": f"{SESSION_COOKIE}={cookie}"}
        if method == "POST":
            return await other.post(path, json=LICENSE_QUERY, headers=headers)
        return await other.request(method, path, headers=headers)


def stored_rows(service) -> list[str]:
    with service.database.read() as session:
        return [
            repr(row) for table in metadata.sorted_tables for row in session.execute(table.select())
        ]


async def test_the_cookie_holds_a_random_session_id_not_the_token(client, make_district, service):
    district = await make_district(active=10)

    response = await client.post("/session", json={"token": district.manager_token}, headers=TAB)

    assert response.status_code == 200
    cookie = response.cookies[SESSION_COOKIE]
    assert district.manager_token not in response.headers["set-cookie"]
    assert len(cookie) >= 43  # 32 random bytes, base64url
    second = await sign_in(client, district.manager_token)
    assert second != cookie
    # The server keeps only a hash of the id: no row holds the id itself.
    rows = stored_rows(service)
    assert not any(cookie in row or second in row for row in rows)
    assert any(hash_token(second) in row for row in rows)


async def test_cookie_attributes(client, make_district, service):
    district = await make_district(active=10)

    response = await client.post("/session", json={"token": district.viewer_token}, headers=TAB)

    morsel = SimpleCookie(response.headers["set-cookie"])[SESSION_COOKIE]
    assert SESSION_COOKIE.startswith("__Host-")
    assert morsel["secure"] is True
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "strict"
    assert morsel["path"] == "/"
    assert morsel["domain"] == ""
    assert int(morsel["max-age"]) == 12 * 3600
    assert response.headers["cache-control"] == "no-store"


async def test_a_session_ends_after_30_idle_minutes(
    client, client_factory, make_district, service, clock
):
    district = await make_district(active=10)
    cookie = await sign_in(client, district.manager_token)

    for _ in range(4):  # used every 29 minutes, it lives on past the first half hour
        clock.advance(minutes=29)
        assert (await as_tab(client_factory, service, cookie)).status_code == 200
    clock.advance(minutes=31)

    ended = await as_tab(client_factory, service, cookie)
    assert ended.status_code == 401
    assert "session has ended" in ended.json()["errors"][0]["message"]
    assert (await as_tab(client_factory, service, cookie, "POST", "/graphql")).status_code == 401


async def test_last_seen_is_written_at_most_once_a_minute(
    client, client_factory, make_district, service, clock
):
    district = await make_district(active=10)
    cookie = await sign_in(client, district.manager_token)

    def last_seen():
        with service.database.read() as session:
            return session.exec(select(DashboardSession.last_seen_at)).one()

    signed_in_at = last_seen()
    clock.advance(seconds=30)
    for _ in range(5):
        assert (await as_tab(client_factory, service, cookie)).status_code == 200
    assert last_seen() == signed_in_at
    clock.advance(seconds=31)
    assert (await as_tab(client_factory, service, cookie)).status_code == 200
    assert last_seen() == clock()


async def test_a_session_ends_12_hours_after_sign_in_however_used(
    client, client_factory, make_district, service, clock
):
    district = await make_district(active=10)
    cookie = await sign_in(client, district.manager_token)

    for _ in range(11 * 4 + 3):  # every 15 minutes, to 11 h 45 min
        clock.advance(minutes=15)
        assert (await as_tab(client_factory, service, cookie)).status_code == 200
    clock.advance(minutes=15)

    assert (await as_tab(client_factory, service, cookie)).status_code == 401
    # Signing in again starts a new session.
    fresh = await sign_in(client, district.manager_token)
    assert (await as_tab(client_factory, service, fresh)).status_code == 200


async def test_sign_out_ends_the_session_on_the_server(
    client, client_factory, make_district, service
):
    district = await make_district(active=10)
    cookie = await sign_in(client, district.manager_token)
    assert (await as_tab(client_factory, service, cookie, "POST", "/graphql")).status_code == 200

    out = await client.delete("/session", headers=TAB)
    assert out.status_code == 200
    assert SimpleCookie(out.headers["set-cookie"])[SESSION_COOKIE]["max-age"] == "0"

    # A copy of the old cookie, replayed, signs no one in.
    assert (await as_tab(client_factory, service, cookie)).status_code == 401
    replayed = await as_tab(client_factory, service, cookie, "POST", "/graphql")
    assert replayed.status_code == 401
    assert replayed.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    download = await as_tab(client_factory, service, cookie, "GET", "/reports/active-students.csv")
    assert download.status_code == 401


async def test_signing_in_again_ends_the_session_it_replaces(
    client, client_factory, make_district, service
):
    district = await make_district(active=10)
    first = await sign_in(client, district.manager_token)

    second = await sign_in(client, district.viewer_token)

    assert (await as_tab(client_factory, service, first)).status_code == 401
    signed_in = await as_tab(client_factory, service, second)
    assert signed_in.json()["permissions"] == ["VIEW_LICENSE"]


async def test_token_revoke_ends_its_sessions_at_once(
    client, client_factory, make_district, service, settings, monkeypatch
):
    district = await make_district(active=10)
    revoked = await sign_in(client, district.viewer_token)
    kept = await sign_in(client, district.manager_token)
    with service.database.read() as session:
        token_id = session.exec(
            select(ApiToken.id).where(ApiToken.token_hash == hash_token(district.viewer_token))
        ).one()

    monkeypatch.setenv("LICENSING_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("LICENSING_DATA_DIR", str(settings.data_dir))
    run("token", "revoke", str(token_id), "--district", district.slug)

    assert (await as_tab(client_factory, service, revoked)).status_code == 401
    assert (await as_tab(client_factory, service, revoked, "POST", "/graphql")).status_code == 401
    with service.database.read() as session:
        ended = session.exec(
            select(DashboardSession).where(DashboardSession.token_id == token_id)
        ).one()
    assert ended.revoked_at is not None
    # Another token's session goes on.
    assert (await as_tab(client_factory, service, kept)).status_code == 200


async def test_a_made_up_or_oversized_cookie_signs_no_one_in(
    client_factory, service, make_district
):
    await make_district(active=10)
    for value in ("made-up", "x" * 5000, hash_token("made-up")):
        response = await as_tab(client_factory, service, value, "POST", "/graphql")
        assert response.status_code == 401
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
