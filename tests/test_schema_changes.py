"""The API change policy (docs/api-changes.md): a breaking change to schema.graphql since the last
release fails the suite until the changelog names it; a dangerous one is a warning."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest

from graph.schema_changes import check_changes
from tests.utils.cli import run

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.filterwarnings("always::UserWarning")
def test_schema_graphql_has_no_breaking_change_the_changelog_does_not_name():
    report = check_changes(
        current_sdl=(ROOT / "schema.graphql").read_text(),
        released_sdl=(ROOT / "docs/schema/released.graphql").read_text(),
        changelog=(ROOT / "docs/api-changes.md").read_text(),
        today=datetime.now(UTC).date(),
    )
    assert report.passed, report.text()
    if report.unlisted_dangerous:
        warnings.warn(report.text(), UserWarning, stacklevel=1)


# A small contract of its own, so these tests do not move with the real schema.
RELEASED = """# Released schema: 0.1.0 (2026-11-29)

type Query {
  license: License!
  alerts(placement: AlertPlacement, includeResolved: Boolean! = false): [Alert!]!
}

type License {
  used: Int!
  total: Int!
  lastSyncStatus: String
}

type Alert {
  id: ID!
  kind: AlertKind!
}

enum AlertKind {
  LICENSES_LOW
  EXPIRED
}

enum AlertPlacement {
  DASHBOARD
  LICENSE_BANNER
}
"""
CURRENT = RELEASED.split("\n", 2)[2]

CHANGELOG = """# API changes

Policy text with a `License.used` in passing, which names nothing.

## Changelog

### 0.2.0 (unreleased)

{entries}

### 0.1.0 (2026-11-29)

- Added: The first contract.
"""


class Contract:
    """A schema file, a released schema and a changelog in a folder of their own."""

    def __init__(self, folder: Path) -> None:
        self.schema = folder / "schema.graphql"
        self.released = folder / "released.graphql"
        self.changelog = folder / "api-changes.md"
        self.schema.write_text(CURRENT)
        self.released.write_text(RELEASED)
        self.log("")

    def log(self, *entries: str) -> None:
        self.changelog.write_text(CHANGELOG.format(entries="\n".join(entries)))

    def change(self, old: str, new: str) -> None:
        text = self.schema.read_text()
        assert old in text
        self.schema.write_text(text.replace(old, new))

    def options(self) -> list[str]:
        return [
            f"--schema-file={self.schema}",
            f"--released-file={self.released}",
            f"--changelog={self.changelog}",
        ]

    def check(self, expect: int = 0) -> str:
        result = run("schema", "--check-changes", *self.options(), expect=expect)
        return result.stdout + result.stderr


@pytest.fixture
def contract(tmp_path: Path) -> Contract:
    return Contract(tmp_path)


def test_no_change_passes(contract: Contract):
    assert contract.check() == "No schema changes since 0.1.0 (2026-11-29).\n"


def test_a_removed_field_fails_naming_it_until_the_changelog_lists_it(contract: Contract):
    contract.change("  total: Int!\n", "")

    output = contract.check(expect=1)
    assert "FAILED: 1 breaking change(s)" in output
    assert "- Breaking: `License.total`: Field License.total was removed." in output

    contract.log(
        "- Breaking: `License.total` is removed: read `License.capacity`, which counts",
        "  the same seats.",
    )
    output = contract.check()
    assert "FAILED" not in output
    assert "Breaking changes named in the changelog:" in output
    assert "License.total: Field License.total was removed." in output


def test_a_changed_field_type_fails_until_the_changelog_lists_it(contract: Contract):
    contract.change("  lastSyncStatus: String\n", "  lastSyncStatus: SyncStatus\n")
    contract.change(
        "enum AlertKind {", "enum SyncStatus {\n  SUCCEEDED\n  FAILED\n}\n\nenum AlertKind {"
    )

    output = contract.check(expect=1)
    assert (
        "- Breaking: `License.lastSyncStatus`: Field License.lastSyncStatus changed type "
        "from String to SyncStatus." in output
    )

    contract.log("- Breaking: `License.lastSyncStatus` is now a `SyncStatus` enum.")
    contract.check()


def test_a_removed_argument_is_named_by_its_coordinate(contract: Contract):
    contract.change("alerts(placement: AlertPlacement, ", "alerts(")

    output = contract.check(expect=1)
    assert "- Breaking: `Query.alerts(placement:)`" in output

    contract.log("- Breaking: `Query.alerts(placement:)` is removed.")
    contract.check()


def test_a_breaking_change_counts_as_listed_only_in_a_breaking_entry_since_the_release(
    contract: Contract,
):
    contract.change("  total: Int!\n", "")
    # Named, but as an addition; and named in the released version's section, which is history.
    contract.log("- Added: `License.total` now has a description.")
    contract.changelog.write_text(
        contract.changelog.read_text() + "- Breaking: `License.total` was removed.\n"
    )

    assert "`License.total`: Field License.total was removed." in contract.check(expect=1)


def test_a_dangerous_change_warns_but_passes(contract: Contract):
    contract.change("  EXPIRED\n", "  EXPIRED\n  OVER_LIMIT\n")

    output = contract.check()
    assert "WARNING: dangerous change(s) not named in the changelog" in output
    assert (
        "- Dangerous: `AlertKind.OVER_LIMIT`: Enum value AlertKind.OVER_LIMIT was added." in output
    )

    contract.log("- Added: `AlertKind.OVER_LIMIT`, when more students are active than licensed.")
    output = contract.check()
    assert "WARNING" not in output
    assert "1 dangerous" in output


def test_an_additive_change_passes_without_a_warning_or_an_entry(contract: Contract):
    contract.change("  used: Int!\n", "  used: Int!\n  remaining: Int!\n")

    output = contract.check()
    assert output == "Schema changes since 0.1.0 (2026-11-29): 0 breaking, 0 dangerous, 1 safe.\n"


def test_an_entry_without_a_known_label_is_refused_with_its_line(contract: Contract):
    contract.log("- Removed: `License.total`.")

    output = contract.check(expect=1)
    assert "Changelog line 9: an entry starts `- Label: `" in output
    assert "Breaking, Deprecated, Dangerous, Added, Changed, Fixed" in output


def test_release_copies_the_schema_and_opens_the_next_section(contract: Contract):
    contract.change("  EXPIRED\n", "  EXPIRED\n  OVER_LIMIT\n")
    contract.log("- Added: `AlertKind.OVER_LIMIT`.")

    run("schema", "--release", "--date=2027-01-15", *contract.options())

    released = contract.released.read_text()
    assert released.startswith("# Released schema: 0.2.0 (2027-01-15)\n")
    assert released.endswith(contract.schema.read_text())
    changelog = contract.changelog.read_text()
    assert (
        "### 0.3.0 (unreleased)\n\n### 0.2.0 (2027-01-15)\n\n- Added: `AlertKind.OVER_LIMIT`."
        in (changelog)
    )
    assert contract.check() == "No schema changes since 0.2.0 (2027-01-15).\n"

    # The next breaking change must be listed again, in the new section.
    contract.change("  total: Int!\n", "")
    assert "License.total" in contract.check(expect=1)


def test_release_refuses_an_unlisted_breaking_change_and_writes_nothing(contract: Contract):
    contract.change("  total: Int!\n", "")
    before = (contract.released.read_text(), contract.changelog.read_text())

    result = run("schema", "--release", "--date=2027-01-15", *contract.options(), expect=1)

    assert "License.total" in result.stdout
    assert (contract.released.read_text(), contract.changelog.read_text()) == before


def test_release_needs_an_unreleased_section(contract: Contract):
    contract.changelog.write_text(
        CHANGELOG.replace("### 0.2.0 (unreleased)\n", "").format(entries="")
    )

    result = run("schema", "--release", *contract.options(), expect=1)
    assert "The newest changelog section (0.1.0) is already released" in result.stderr


DEPRECATED_IN_1_2 = """### 1.4.0 (unreleased)

- Breaking: `License.total` is removed; read `License.capacity`.

### 1.3.0 (2027-06-01)

- Added: `License.capacity`.

### 1.2.0 (2027-03-01)

- Deprecated: `License.total`, for `License.capacity`.
"""


def test_since_0_2_a_removal_waits_two_minor_releases_and_six_months(contract: Contract):
    contract.released.write_text(RELEASED.replace("0.1.0 (2026-11-29)", "1.3.0 (2027-06-01)"))
    contract.changelog.write_text(DEPRECATED_IN_1_2)
    contract.change("  total: Int!\n", "")
    check = ["schema", "--check-changes", *contract.options()]

    output = run(*check, "--date=2027-08-31", expect=1).stdout
    assert "FAILED: 1 breaking change(s) made before the deprecation period ended" in output
    assert "License.total: Field License.total was removed." in output

    assert "FAILED" not in run(*check, "--date=2027-09-01").stdout

    # Deprecated one minor release ago only: too early, however long ago.
    contract.changelog.write_text(
        DEPRECATED_IN_1_2.replace(
            "- Added: `License.capacity`.", "- Deprecated: `License.total`."
        ).replace(
            "- Deprecated: `License.total`, for `License.capacity`.", "- Added: `License.capacity`."
        )
    )
    assert "License.total" in run(*check, "--date=2029-01-01", expect=1).stdout


def test_before_0_2_a_listed_breaking_change_needs_no_deprecation(contract: Contract):
    # 0.1.0 to 0.2.0 was the contract's one change without deprecation.
    contract.change("  total: Int!\n", "")
    contract.changelog.write_text(
        contract.changelog.read_text().replace(
            "### 0.2.0 (unreleased)\n", "### 0.2.0 (unreleased)\n\n- Breaking: `License.total`.\n"
        )
    )

    assert "FAILED" not in run("schema", "--check-changes", *contract.options()).stdout
