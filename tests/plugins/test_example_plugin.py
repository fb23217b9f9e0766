"""The example plugin in docs/plugins.md works as printed, and the two hooks behave as documented.

The example is installed the way pip would install it: its module next to a distribution's
metadata that registers it in the ``licensing`` entry-point group.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.runtime import build_service
from licensing.orchestration.plugin_host import load_plugins
from licensing.settings import DistrictConfig
from licensing.storage import signing
from licensing.storage.roster import UsageCounts, current_usage
from licensing.storage.roster_changes import apply_roster
from plugins.hookspecs import hookimpl
from plugins.records import DistrictRef, RosterFileError, SourceError, StudentRecord
from tests.utils.districts import TEST_KEY_ID, create_district

pytestmark = pytest.mark.anyio

PLUGINS_DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
RIVERSIDE = DistrictRef(slug="riverside", official_name="Test District", time_zone="UTC")


def doc_block(pattern: str) -> str:
    text = PLUGINS_DOC.read_text(encoding="utf-8")
    found = re.search(pattern, text, flags=re.DOTALL)
    assert found, f"docs/plugins.md has no block matching {pattern!r}"
    return found.group(1)


def example_plugin_code() -> str:
    return doc_block(r"```python\n(# example_plugin\.py\n.*?)```")


def example_export() -> str:
    """The SIS export the docs show, starting with its header row."""
    return doc_block(r"```text\n(StudentID,.*?)```")


def install_example_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Install the documented example like pip would: a module and its dist-info folder."""
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / "example_plugin.py").write_text(example_plugin_code(), encoding="utf-8")
    dist_info = site / "example_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: example-plugin\nVersion: 0.1\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(
        "[licensing]\nexample_plugin = example_plugin\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(site))
    # The module is imported by the plugin manager; forget it again after the test.
    monkeypatch.delitem(sys.modules, "example_plugin", raising=False)


@pytest.fixture
def example_installed(tmp_path, monkeypatch):
    install_example_plugin(tmp_path, monkeypatch)


def test_example_plugin_is_valid_python():
    compile(example_plugin_code(), "example_plugin.py", "exec")


def test_example_plugin_is_loaded_from_its_entry_point(settings, example_installed):
    plugins = load_plugins(settings)

    assert "example_plugin" in plugins.plugin_names()
    # Listed alongside the built-in source, which it does not replace.
    assert {"local", "nightly_export"} <= set(plugins.roster_sources)
    source = plugins.roster_source("nightly_export")
    assert source.description == "Students from the SIS's nightly CSV export."
    assert plugins.roster_source("local").name == "local"
    assert "license_file" in plugins.license_sources


def test_only_limits_which_entry_points_load(settings, example_installed):
    plugins = load_plugins(settings, only=["some_other_plugin"])

    assert "example_plugin" not in plugins.plugin_names()
    assert "nightly_export" not in plugins.roster_sources
    assert "local" in plugins.roster_sources


def test_example_plugin_reads_the_documented_export(settings, example_installed):
    export = settings.data_dir / "sis-exports" / "riverside.csv"
    export.parent.mkdir(parents=True)
    export.write_text(example_export(), encoding="utf-8")
    source = load_plugins(settings).roster_source("nightly_export")

    # With no options, the source reads its default export for the district.
    records = source.fetch_students(district=RIVERSIDE, options=source.options_model())

    assert [(record.source_id, record.status) for record in records] == [
        ("1001", "active"),
        ("1002", "active"),
        ("1003", "pre-registered"),
        ("1004", "graduated"),
        ("1005", "withdrawn"),
    ]
    assert records[0] == StudentRecord(
        source_id="1001",
        role="student",
        status="active",
        grade="3",
        schools=("Riverside Elementary",),
        graduation_year=2035,
    )


def test_example_plugin_records_are_counted_by_the_host(
    service, settings, tmp_path, example_installed
):
    # The local roster already lists student 1001: the same person, counted once.
    district_id = create_district(
        service, slug="riverside", roster=[StudentRecord(source_id="1001")]
    )
    export = tmp_path / "nightly.csv"
    export.write_text(example_export(), encoding="utf-8")
    source = load_plugins(settings).roster_source("nightly_export")
    records = source.fetch_students(district=RIVERSIDE, options=source.options_model(path=export))

    with service.database.write() as session:
        change = apply_roster(
            session,
            district_id=district_id,
            source=source.name,
            records=records,
            replace=True,
            now=service.clock(),
        )

    assert change.records == 5
    assert change.used_before == 1
    # As the docs say: 1001 and 1002 use a license, the other three are inactive students.
    with service.database.read() as session:
        assert current_usage(session, district_id=district_id) == UsageCounts(
            active_students=2, inactive_students=3, staff=0, devices=0, duplicates_collapsed=1
        )


def test_an_unknown_status_code_is_refused_by_the_host(
    service, settings, tmp_path, example_installed
):
    district_id = create_district(service, slug="riverside", roster=[StudentRecord(source_id="S1")])
    export = tmp_path / "nightly.csv"
    export.write_text("StudentID,Status\n2001,A\n2002,X\n", encoding="utf-8")
    source = load_plugins(settings).roster_source("nightly_export")
    records = source.fetch_students(district=RIVERSIDE, options=source.options_model(path=export))

    with pytest.raises(RosterFileError, match="'X'"), service.database.write() as session:
        apply_roster(
            session,
            district_id=district_id,
            source=source.name,
            records=records,
            replace=True,
            now=service.clock(),
        )

    with service.database.read() as session:
        assert current_usage(session, district_id=district_id).active_students == 1


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "Cannot read the SIS export"),
        ("Student,Status\n2001,A\n", "has no StudentID column"),
    ],
)
def test_example_plugin_reports_what_it_cannot_read(
    settings, tmp_path, example_installed, content, message
):
    export = tmp_path / "nightly.csv"
    if content is not None:
        export.write_text(content, encoding="utf-8")
    source = load_plugins(settings).roster_source("nightly_export")

    with pytest.raises(SourceError, match=message):
        source.fetch_students(district=RIVERSIDE, options=source.options_model(path=export))


class FixedRoster:
    """A roster source with a fixed list of people."""

    description = "A fixed list, for tests."

    def __init__(self, name: str, records: list[StudentRecord]) -> None:
        self.name = name
        self.records = records

    def fetch_students(self, *, district, options):
        return list(self.records)


class RosterPlugin:
    def __init__(self, *sources: FixedRoster) -> None:
        self.sources = list(sources)
        self.calls = 0

    @hookimpl
    def register_roster_sources(self, settings):
        self.calls += 1
        return self.sources


def test_hook_register_roster_sources(settings):
    replacement = FixedRoster("local", [StudentRecord(source_id="R1")])
    extra = FixedRoster("vendor_sis", [])
    plugin = RosterPlugin(replacement, extra)

    plugins = load_plugins(settings, load_entry_points=False, extra_plugins=[plugin])

    # A third-party source with a built-in's name wins over the built-in.
    assert plugins.roster_source("local") is replacement
    assert plugins.roster_source("vendor_sis") is extra
    # The hook is called once; the sources are kept.
    plugins.roster_source("local")
    assert plugin.calls == 1
    # Without the plugin, the built-in local roster is there.
    built_in = load_plugins(settings, load_entry_points=False).roster_source("local")
    assert type(built_in).__name__ == "LocalRosterSource"


def test_an_unknown_roster_source_names_the_available_ones(settings):
    plugins = load_plugins(settings, load_entry_points=False)

    with pytest.raises(LookupError, match=r"'powerschool'.*available: .*local"):
        plugins.roster_source("powerschool")


def signed_license(key, *, seats: int, district: str = "riverside") -> signing.SignedLicense:
    terms = signing.LicenseTerms(
        license_id="M1T1-PLUGIN",
        district=district,
        licensed_to="Test District",
        legal_entity_name=None,
        total=seats,
        created_on=date(2023, 8, 1),
        expires_on=date(2027, 6, 30),
        deactivated=False,
        overage_allowance=0.0,
        issued_at=datetime(2026, 11, 1, tzinfo=UTC),
    )
    return signing.sign_license(terms, private_key=key, key_id=TEST_KEY_ID)


class FixedLicense:
    """A license source that hands out one signed license."""

    description = "A fixed license, for tests."

    def __init__(self, name: str, signed: signing.SignedLicense) -> None:
        self.name = name
        self.signed = signed
        self.asked_for: list[str] = []

    def fetch_license(self, *, district):
        self.asked_for.append(district.slug)
        return self.signed


class AsyncFixedLicense(FixedLicense):
    async def fetch_license(self, *, district):
        self.asked_for.append(district.slug)
        return self.signed


class LicensePlugin:
    def __init__(self, *sources: FixedLicense) -> None:
        self.sources = list(sources)

    @hookimpl
    def register_license_sources(self, settings):
        return self.sources


async def test_hook_register_license_sources(settings, clock, signing_key):
    replacement = FixedLicense("license_file", signed_license(signing_key, seats=1234))
    plugins = load_plugins(
        settings, load_entry_points=False, extra_plugins=[LicensePlugin(replacement)]
    )
    assert plugins.license_source("license_file") is replacement

    # The district uses the default license_file source: the plugin's replaces the built-in
    # (which would fail here, as no license file exists).
    built = build_service(settings, upgrade_schema=True, clock=clock, plugins=plugins)
    try:
        district_id = create_district(built, slug="riverside")
        outcome = await built.license_updater.refresh(district_id=district_id, actor="test")
        state = built.read_district_state(district_id)
    finally:
        built.database.dispose()

    assert outcome.problem is None
    assert replacement.asked_for == ["riverside"]
    assert state.license is not None
    assert state.license.total == 1234
    assert not settings.license_file_for("riverside").exists()


async def test_a_district_picks_its_license_source_by_name(settings, clock, signing_key):
    vendor = AsyncFixedLicense("vendor_server", signed_license(signing_key, seats=700))
    configured = settings.model_copy(
        update={"districts": {"riverside": DistrictConfig(license_source="vendor_server")}}
    )
    plugins = load_plugins(
        configured, load_entry_points=False, extra_plugins=[LicensePlugin(vendor)]
    )
    built = build_service(configured, upgrade_schema=True, clock=clock, plugins=plugins)
    try:
        district_id = create_district(built, slug="riverside")
        outcome = await built.license_updater.refresh(district_id=district_id, actor="test")
        state = built.read_district_state(district_id)
    finally:
        built.database.dispose()

    assert outcome.problem is None
    assert vendor.asked_for == ["riverside"]
    assert state.license is not None
    assert state.license.total == 700


async def test_the_host_verifies_what_a_license_source_returns(settings, clock):
    # Signed with a key nobody trusts: the source cannot make the host believe it.
    untrusted = Ed25519PrivateKey.generate()
    forged = FixedLicense("license_file", signed_license(untrusted, seats=99999))
    plugins = load_plugins(settings, load_entry_points=False, extra_plugins=[LicensePlugin(forged)])
    built = build_service(settings, upgrade_schema=True, clock=clock, plugins=plugins)
    try:
        district_id = create_district(built, slug="riverside")
        outcome = await built.license_updater.refresh(district_id=district_id, actor="test")
        state = built.read_district_state(district_id)
    finally:
        built.database.dispose()

    assert outcome.problem is not None
    assert outcome.problem.code == "BAD_SIGNATURE"
    assert state.license is None


def test_the_documented_plugin_test_passes(tmp_path, example_installed):
    code = doc_block(
        r"```python\n(from licensing\.orchestration\.plugin_host import load_plugins\n.*?)```"
    )
    namespace: dict[str, object] = {}
    exec(compile(code, "test_documented.py", "exec"), namespace)
    documented_test = namespace["test_nightly_export_is_a_roster_source"]
    folder = tmp_path / "documented"
    folder.mkdir()

    documented_test(folder)  # type: ignore[operator]
