"""/healthz answers while the process runs; /readyz only while the database answers too."""

from __future__ import annotations

import pytest

from db.session import Database

pytestmark = pytest.mark.anyio

# Databases that cannot be reached: a SQLite "file" that is a folder, and a PostgreSQL server that
# is not listening (port 1 refuses at once).
UNREACHABLE = {
    "sqlite": lambda tmp_path: f"sqlite:///{tmp_path}",
    "postgresql": lambda _tmp_path: (
        "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    ),
}


async def test_healthz_needs_nothing_but_the_process(client):
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ready_with_a_database(client):
    response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


@pytest.mark.parametrize("backend", sorted(UNREACHABLE))
async def test_readyz_is_503_while_the_database_is_unreachable(service, client, tmp_path, backend):
    working = service.database
    broken = Database(UNREACHABLE[backend](tmp_path))
    service.database = broken
    try:
        unready = await client.get("/readyz")
        alive = await client.get("/healthz")
    finally:
        service.database = working
        broken.dispose()

    assert unready.status_code == 503
    assert unready.json() == {"status": "database unavailable", "code": "DATABASE_UNAVAILABLE"}
    assert int(unready.headers["Retry-After"]) >= 1
    assert alive.status_code == 200

    # Ready again as soon as the database answers.
    again = await client.get("/readyz")
    assert again.status_code == 200
