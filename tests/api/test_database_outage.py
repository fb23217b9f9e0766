"""While the database cannot answer, every endpoint says so with HTTP 503, the code
DATABASE_UNAVAILABLE and Retry-After (never a 500 or an internal error), and serves again as
soon as it is back. The restart of a real PostgreSQL under load is tests/app/test_database_restart.py.
"""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.engine import make_url

from db import session as db_session
from db.session import Database
from tests.utils.graphql import graphql

pytestmark = pytest.mark.anyio

# Databases that cannot be reached: a SQLite "file" that is a folder, and a PostgreSQL server that
# is not listening (port 1 refuses at once).
UNREACHABLE = {
    "sqlite": lambda tmp_path: f"sqlite:///{tmp_path}",
    "postgresql": lambda _tmp_path: (
        "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    ),
}
DASHBOARD = "{ license { display used total } alerts { kind } }"
SET_THRESHOLD = """
mutation Set($value: Int!) {
  setThreshold(studentsRemaining: $value) {
    licenseSettings { studentsRemainingThreshold }
    errors { code }
  }
}
"""
SETTINGS = "{ licenseSettings { studentsRemainingThreshold } }"


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    codes = [error["extensions"]["code"] for error in body["errors"]]
    assert codes and set(codes) == {"DATABASE_UNAVAILABLE"}, body
    for text in ("SELECT", "UPDATE", "sqlite", "psycopg", "Traceback", "Internal error"):
        assert text not in response.text


@pytest.mark.parametrize("backend", sorted(UNREACHABLE))
async def test_every_endpoint_answers_503_while_the_database_is_unreachable(
    service, client, make_district, tmp_path, backend
):
    district = await make_district(seats=100, active=10)
    token = district.manager_token
    bearer = {"Authorization": f"Bearer {token}"}
    working = service.database
    broken = Database(UNREACHABLE[backend](tmp_path))
    service.database = broken
    try:
        answers = {
            "dashboard": await graphql(client, token, DASHBOARD),
            "setThreshold": await graphql(client, token, SET_THRESHOLD, {"value": 7}),
            "dashboard by GET": await client.get(
                "/graphql", params={"query": DASHBOARD}, headers=bearer
            ),
            "report": await client.get("/reports/active-students.csv", headers=bearer),
            "sign-in": await client.post(
                "/session", json={"token": token}, headers={"X-Requested-With": "licensing-tab"}
            ),
        }
        ready = await client.get("/readyz")
    finally:
        service.database = working
        broken.dispose()

    for name, response in answers.items():
        assert response.status_code == 503, name
        assert_unavailable(response)
    assert ready.status_code == 503
    assert ready.json()["code"] == "DATABASE_UNAVAILABLE"
    assert int(ready.headers["Retry-After"]) >= 1

    # Back at once, and the refused change was not made.
    again = await graphql(client, token, SETTINGS)
    assert again.status_code == 200
    assert again.json()["data"]["licenseSettings"]["studentsRemainingThreshold"] != 7


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite gives up waiting for the write lock after 0.2 s instead of 15 s."""
    monkeypatch.setattr(db_session, "SQLITE_BUSY_TIMEOUT_MS", 200)


async def test_a_write_that_meets_a_locked_sqlite_database_answers_503_and_succeeds_after(
    short_busy_timeout, settings, service, client, make_district
):
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        pytest.skip("SQLite's lock: PostgreSQL's writers do not lock the database")
    district = await make_district(seats=100, active=10, threshold=5)
    token = district.manager_token
    # Another process holds SQLite's write lock for longer than the busy timeout.
    other = sqlite3.connect(url.database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        locked = await graphql(client, token, SET_THRESHOLD, {"value": 9})
        dashboard = await graphql(client, token, DASHBOARD)  # readers are not held up
        other.execute("ROLLBACK")
        retried = await graphql(client, token, SET_THRESHOLD, {"value": 9})
    finally:
        other.close()

    assert_unavailable(locked)
    assert locked.json()["errors"][0]["path"] == ["setThreshold"]
    assert dashboard.status_code == 200 and "errors" not in dashboard.json()
    assert retried.status_code == 200
    payload = retried.json()["data"]["setThreshold"]
    assert payload["errors"] == []
    assert payload["licenseSettings"]["studentsRemainingThreshold"] == 9
