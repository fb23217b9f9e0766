"""Every command-line test works on its own data folder and database: one already at the newest
revision, or with `empty_database` an empty one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.runtime import build_service
from licensing.orchestration.service import LicensingService
from licensing.settings import load_settings


@pytest.fixture(autouse=True)
def database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_database_url: Callable[..., str]
) -> str:
    """Every command in these tests uses this data folder and database (its URL)."""
    url = new_database_url("cli", migrated=True)
    monkeypatch.setenv("LICENSING_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LICENSING_DATABASE_URL", url)
    return url


@pytest.fixture
def empty_database(
    database: str, monkeypatch: pytest.MonkeyPatch, new_database_url: Callable[..., str]
) -> str:
    """Instead of `database`, an empty database (its URL), as on the first run after installing."""
    url = new_database_url("cli-empty")
    monkeypatch.setenv("LICENSING_DATABASE_URL", url)
    return url


@pytest.fixture
def built() -> Iterator[LicensingService]:
    """The service as the command line builds it, to look at what a command did."""
    service = build_service(load_settings())
    yield service
    service.database.dispose()
