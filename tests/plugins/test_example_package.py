"""A separately packaged third-party plugin, installed with pip, works without any change here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.runtime import build_service
from licensing.orchestration.plugin_host import load_plugins
from licensing.settings import DistrictConfig, RosterSourceConfig
from licensing.storage.tokens import Permission
from tests.utils.districts import create_district, token_for
from tests.utils.graphql import graphql_data

# pip builds packages: one pip at a time (the wheel test shares this xdist group), so two builds
# never compete for pip's cache and the package index.
pytestmark = [pytest.mark.anyio, pytest.mark.xdist_group("pip")]

PACKAGE = Path(__file__).resolve().parent.parent / "example_package"


@pytest.fixture(scope="module")
def installed_package(tmp_path_factory) -> Path:
    """pip-install the example package into a folder of its own (its build backend comes from the package index, as for any install)."""
    target = tmp_path_factory.mktemp("site")
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(PACKAGE),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr[-4000:]
    return target


@pytest.fixture
def on_path(installed_package, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(installed_package))
    import importlib

    importlib.invalidate_caches()


async def test_the_installed_package_is_a_roster_source_in_data_sources(
    on_path, settings, clock, tmp_path, client_factory
):
    export = tmp_path / "export.json"
    export.write_text(
        json.dumps(
            {
                "people": [
                    {"id": "1", "student_number": "A1", "schools": ["North"]},
                    {"id": "2", "student_number": "A1", "schools": ["South"]},
                    {"id": "3", "student_number": "A3", "enrolled": False},
                    {"id": "4", "role": "teacher"},
                    {"id": "5", "student_number": "A5"},
                ]
            }
        )
    )
    settings.districts["riverside"] = DistrictConfig(
        roster_sources={
            "sis": RosterSourceConfig(kind="example_sis", options={"path": str(export)})
        }
    )
    service = build_service(settings, upgrade_schema=True, clock=clock)
    assert "example_sis" in service.plugins.plugin_names()
    district_id = create_district(service, slug="riverside")

    outcome = await service.roster_sync.sync(district_id=district_id, source="sis", actor="test")

    assert outcome.status == "applied"
    assert outcome.active_after == 2  # A1 (in two schools) and A5
    token = token_for(service, district_id, Permission.MANAGE_SETTINGS)
    async with client_factory(service) as client:
        data = await graphql_data(
            client,
            token,
            "{ dataSources { name kind activeStudents excluded { staff inactive duplicate } } }",
        )
    assert data["dataSources"] == [
        {
            "name": "sis",
            "kind": "example_sis",
            "activeStudents": 2,
            "excluded": {"staff": 1, "inactive": 1, "duplicate": 1},
        }
    ]
    service.database.dispose()


def test_disabled_plugins_do_not_load(on_path, settings):
    assert "example_sis" in load_plugins(settings).roster_sources

    settings.disabled_plugins = ["example_sis", "clever"]
    plugins = load_plugins(settings)

    assert "example_sis" not in plugins.roster_sources
    assert "example_sis" not in plugins.plugin_names()
    assert "clever" not in plugins.plugin_names()
