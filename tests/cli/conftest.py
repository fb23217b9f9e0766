"""Every command-line test works on its own data folder and SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.runtime import build_service
from licensing.service import LicensingService
from licensing.settings import load_settings


@pytest.fixture(autouse=True)
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every command in these tests uses this data folder and SQLite file."""
    path = tmp_path / "cli.db"
    monkeypatch.setenv("LICENSING_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LICENSING_DATABASE_URL", f"sqlite:///{path}")
    return path


@pytest.fixture
def built() -> Iterator[LicensingService]:
    """The service as the command line builds it, to look at what a command did."""
    service = build_service(load_settings())
    yield service
    service.database.dispose()
