"""Fixtures: every test gets its own data folder, database, clock and signing key.

The database is a SQLite file, or with LICENSING_TEST_DATABASE_URL set a fresh PostgreSQL database
(tests/utils/databases.py). The service's database is a copy of one migrated at the session's
start, not migrated again for each test.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, Engine, event

from app.factory import create_app
from app.runtime import build_service
from licensing.orchestration.service import LicensingService
from licensing.settings import Settings
from tests.utils.clock import FakeClock
from tests.utils.databases import (
    REQUIRE_POSTGRES,
    REQUIRE_VARIABLE,
    SERVER_URL,
    SERVER_VARIABLE,
    MigratedTemplate,
    PostgresServer,
    TestDatabases,
)
from tests.utils.districts import (
    LicenseIssuer,
    TestDistrict,
    create_district,
    new_signing_key,
    public_key_text,
    students,
)


def pytest_configure(config: pytest.Config) -> None:
    if REQUIRE_POSTGRES and not SERVER_URL:
        raise pytest.UsageError(f"{REQUIRE_VARIABLE} is set, so {SERVER_VARIABLE} must be too.")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Under xdist the benchmarks' smoke runs go one after another on one worker (their group,
    # "bench"): handed out first, they run beside the light tests on the other worker instead of
    # starting last and leaving one worker idle at the end.
    def order(item: pytest.Item) -> int:
        groups = {mark.args[0] for mark in item.iter_markers("xdist_group") if mark.args}
        return 0 if "bench" in groups else 1

    items.sort(key=order)


def pytest_collection_finish(session: pytest.Session) -> None:
    # The modules, the schema and the test items, collected now, live as long as the process.
    # Frozen, the garbage collector no longer walks them in each full collection (about 90 ms in
    # a test process, tens of times per worker); what the tests create is collected as before.
    gc.collect()
    gc.freeze()


def pytest_report_header() -> str:
    if SERVER_URL:
        return (
            f"database: PostgreSQL ({SERVER_VARIABLE}), a new database per test, "
            "migrated ones copied from a template"
        )
    return "database: SQLite, a file per test, migrated ones copied from a template"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | None]:
    if not SERVER_URL:
        yield None
        return
    server = PostgresServer(SERVER_URL)
    yield server
    server.dispose()


@pytest.fixture(scope="session")
def migrated_template(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer | None
) -> Iterator[MigratedTemplate]:
    """The database migrated once for the session, from the migrations in the tree today."""
    template = MigratedTemplate(tmp_path_factory.mktemp("template"), postgres_server)
    yield template
    template.drop()


@pytest.fixture(scope="session")
def database_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this test process's SQLite databases live: the same names test after test."""
    return tmp_path_factory.mktemp("databases")


@pytest.fixture
def new_database_url(
    database_folder: Path,
    postgres_server: PostgresServer | None,
    migrated_template: MigratedTemplate,
) -> Iterator[Callable[..., str]]:
    """new_database_url(name="licensing", migrated=False): a new database for this test, empty or
    at the newest revision, dropped after it.

    Every engine that connects during the test (a command's, say) is disposed of at the end, so
    no pooled connection is left for the garbage collector to find still open.
    """
    connected: set[Engine] = set()

    def track(connection: Connection) -> None:
        connected.add(connection.engine)

    event.listen(Engine, "engine_connect", track)
    databases = TestDatabases(database_folder, postgres_server, migrated_template)
    try:
        yield databases.new
    finally:
        event.remove(Engine, "engine_connect", track)
        for engine in connected:
            engine.dispose()
        databases.drop_all()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer's licensing.toml or LICENSING_* variables leak into a test."""
    import os

    for name in list(os.environ):
        if name.startswith("LICENSING_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def signing_key() -> Any:
    return new_signing_key()


@pytest.fixture
def settings(tmp_path: Any, signing_key: Any, new_database_url: Callable[..., str]) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=new_database_url(migrated=True),
        license_public_keys=[public_key_text(signing_key)],
    )


@pytest.fixture
def service(settings: Settings, clock: FakeClock) -> Iterator[LicensingService]:
    # The settings' database is a copy of the migrated template (a test that overrides `settings`
    # asks for `new_database_url(migrated=True)` too), so there is nothing to upgrade.
    built = build_service(settings, upgrade_schema=False, clock=clock)
    yield built
    built.database.dispose()


@pytest.fixture
def issuer(service: LicensingService, signing_key: Any) -> LicenseIssuer:
    return LicenseIssuer(service=service, key=signing_key)


@pytest.fixture
def client_factory() -> Any:
    """client_factory(service): an httpx client on the app built around that service."""

    def make(service: LicensingService) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=create_app(service))
        # https, as in production: the tab's session cookie is Secure, and a client sends a
        # Secure cookie back only over https.
        return httpx.AsyncClient(transport=transport, base_url="https://testserver")

    return make


@pytest.fixture
async def client(
    service: LicensingService, client_factory: Any
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_factory(service) as http:
        yield http


@pytest.fixture
def make_district(service: LicensingService, issuer: LicenseIssuer) -> Any:
    """make_district(slug, seats=, active=, threshold=, ...) -> TestDistrict with its license applied."""

    async def make(
        slug: str = "riverside",
        *,
        seats: int = 1000,
        active: int = 0,
        roster: list[Any] | None = None,
        threshold: int = 50,
        devices: int = 0,
        time_zone: str = "UTC",
        **license_terms: Any,
    ) -> TestDistrict:
        people = list(roster or []) + students(active, prefix=f"{slug}-")
        district_id = create_district(
            service,
            slug=slug,
            roster=people,
            threshold=threshold,
            devices=devices,
            time_zone=time_zone,
        )
        issuer.write(slug, seats=seats, **license_terms)
        district = TestDistrict(service, district_id, slug)
        await district.refresh_license()
        return district

    return make
