"""Rosters as districts really deliver them: third-party OneRoster bundles synced end to end.

Each bundle in tests/bundles/oneroster is an export as a SIS or a rostering vendor writes it
(byte-order marks, CRLF, vendor columns, odd booleans, role words of the other version, ext:
roles, misspelt columns, other encodings, rows nobody can classify). Each is synced through the
service, and its count is the hand count written beside it. What the intake read past and could
not classify is what the administrator sees in dataSources, countReview and
`licensing report quarantined`.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from licensing.settings import DistrictConfig, RosterSourceConfig
from licensing.storage.roster import UsageCounts, current_usage
from licensing.storage.tokens import Permission
from tests.plugins.test_oneroster_csv import manifest, user_v1p1, users_csv, write_bundle
from tests.utils.districts import create_district, token_for
from tests.utils.graphql import graphql_data

pytestmark = pytest.mark.anyio

BUNDLES = Path(__file__).resolve().parents[1] / "bundles" / "oneroster"
ISSUE = "runId total sample { file line column reason rows sourceId }"
SOURCES = f"""{{ dataSources {{ name lastStatus lastError held records activeStudents
    excluded {{ staff inactive disabled duplicate otherRole }}
    warnings {{ {ISSUE} }} quarantined {{ {ISSUE} }} }} }}"""
REVIEW = "{ countReview { reason students records licensesFreed examples explanation } }"
CONFIRM = """mutation($run: Int) { confirmRosterSync(source: "sis", runId: $run) {
    status errors { code message } usage { activeStudents } } }"""


@pytest.fixture
def district_id(service) -> int:
    return create_district(service, slug="riverside")


def use_bundle(service, path: Path, **source: object) -> None:
    service.settings.districts["riverside"] = DistrictConfig(
        roster_sources={
            "sis": RosterSourceConfig(kind="oneroster_csv", options={"path": str(path)}, **source)
        }
    )


async def sync(service, district_id: int):
    return await service.roster_sync.sync(district_id=district_id, source="sis", actor="test")


def usage(service, district_id: int) -> UsageCounts:
    with service.database.read() as session:
        return current_usage(session, district_id=district_id)


async def sis_source(client, token: str) -> dict:
    data = await graphql_data(client, token, SOURCES)
    return next(item for item in data["dataSources"] if item["name"] == "sis")


def zipped(folder: Path, tmp_path: Path) -> Path:
    path = tmp_path / f"{folder.name}.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.iterdir()):
            archive.write(file, arcname=f"{folder.name}/{file.name}")
    return path


# Each bundle, its hand count, and the warnings the administrator is shown.
CASES = {
    # OneRoster 1.1 from a SIS: BOM and CRLF, header names in odd case with spaces, a misspelt
    # grades column, vendor columns (ext_vendor_x, userId), a metadata. column, enabledUser as
    # true/1/Yes/0/no/TRUE/False/yes, a principal (a 1.2 word), quoted commas in names and in
    # orgSourcedIds, orgs/classes/enrollments files, a date in US format, a trailing comma.
    # Counted: 1001 (stu-1001 and stu-1001-s, two schools: once), 1002, 1003, 1008, 1009.
    # Not: 1004, 1005, 1007 (disabled), 1006 (tobedeleted); teacher, principal, administrator;
    # the guardian is nobody to the count.
    "v1p1-sis-export": (
        UsageCounts(
            active_students=5,
            inactive_students=4,
            staff=3,
            devices=0,
            duplicates_collapsed=1,
            disabled_students=3,
        ),
        {"staff": 3, "inactive": 1, "disabled": 3, "duplicate": 1, "otherRole": 1},
        [
            ("users.csv", 1, "grdes", "did you mean 'grades'?"),
            ("users.csv", 1, "ext_vendor_x", "is ignored"),
            ("users.csv", 1, "userId", "is ignored"),
            ("users.csv", 14, "dateLastModified", "'08/15/2026 09:30' is not an ISO 8601"),
            ("users.csv", 15, None, "empty fields the header does not have"),
        ],
    ),
    # OneRoster 1.2 from a rostering vendor: no resourceSourcedIds column, a vendor column,
    # enabledUser yes/1/no/0/TRUE/True, "Student" and roleType "Primary", an ext:counselor with
    # no other role, an "administrator" (a 1.1 word), a principal, a student in two schools, a
    # teacher who is also a student, an endDate in US format.
    # Counted: M-01 (u-01 and u-08 share the master identifier), u-02, u-09, u-12 (a student
    # role wins). Not: u-03, u-07 (disabled), u-10 (tobedeleted); u-05, u-06 staff; u-04 (only
    # an ext: role) and u-11 (guardian) are nobody to the count.
    "v1p2-vendor-export": (
        UsageCounts(
            active_students=4,
            inactive_students=3,
            staff=2,
            devices=0,
            duplicates_collapsed=1,
            disabled_students=2,
        ),
        {"staff": 2, "inactive": 1, "disabled": 2, "duplicate": 1, "otherRole": 2},
        [
            ("users.csv", 1, "ext_vendor_x", "is ignored"),
            ("roles.csv", 11, "endDate", "'06/15/2027' is not an ISO 8601 date"),
        ],
    ),
    # OneRoster 1.1 saved by a spreadsheet on Windows: Windows-1252 names (José Peña), CRLF.
    "v1p1-windows-1252": (
        UsageCounts(4, 0, 1, 0, 0, 0),
        {"staff": 1, "inactive": 0, "disabled": 0, "duplicate": 0, "otherRole": 0},
        [("users.csv", None, None, "is Windows-1252 (Latin-1) text, not UTF-8")],
    ),
    # OneRoster 1.2 whose users.csv and roles.csv were saved as UTF-16 ("Unicode text").
    "v1p2-utf16": (
        UsageCounts(3, 0, 1, 0, 0, 0),
        {"staff": 1, "inactive": 0, "disabled": 0, "duplicate": 0, "otherRole": 0},
        [
            ("roles.csv", None, None, "roles.csv is UTF-16 text"),
            ("users.csv", None, None, "users.csv is UTF-16 text"),
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_a_third_party_bundle_is_counted_exactly_and_its_warnings_shown(
    service, district_id, client, name
):
    counts, excluded, warnings = CASES[name]
    use_bundle(service, BUNDLES / name)

    outcome = await sync(service, district_id)

    assert outcome.status == "applied", outcome.problem
    assert usage(service, district_id) == counts
    assert (outcome.warnings, outcome.quarantined) == (len(warnings), 0)
    source = await sis_source(client, token_for(service, district_id, Permission.MANAGE_SETTINGS))
    assert (source["lastStatus"], source["activeStudents"]) == ("APPLIED", counts.active_students)
    assert source["excluded"] == excluded
    assert source["warnings"]["runId"] == outcome.run_id
    assert source["warnings"]["total"] == len(warnings)
    shown = source["warnings"]["sample"]
    assert [(item["file"], item["line"], item["column"]) for item in shown] == [
        (file, line, column) for file, line, column, _text in warnings
    ]
    for item, (_file, _line, _column, text) in zip(shown, warnings, strict=True):
        assert text in item["reason"]
        assert "/" not in (item["file"] or "")  # a file's name, never a path of the server
    assert source["quarantined"] == {"runId": outcome.run_id, "total": 0, "sample": []}


async def test_the_same_bundle_zipped_in_a_folder_counts_the_same(service, district_id, tmp_path):
    use_bundle(service, zipped(BUNDLES / "v1p1-sis-export", tmp_path))

    outcome = await sync(service, district_id)

    assert outcome.status == "applied"
    assert usage(service, district_id) == CASES["v1p1-sis-export"][0]


async def test_count_review_lists_what_the_sync_read_past(service, district_id, client):
    use_bundle(service, BUNDLES / "v1p1-sis-export")
    await sync(service, district_id)
    token = token_for(service, district_id, Permission.MANAGE_SETTINGS)

    groups = {
        group["reason"]: group
        for group in (await graphql_data(client, token, REVIEW))["countReview"]
    }

    warnings = groups["INTAKE_WARNINGS"]
    assert (warnings["students"], warnings["records"], warnings["licensesFreed"]) == (0, 5, 0)
    assert warnings["examples"][0].startswith("sis:users.csv:1: 'grdes' is not a column")
    assert len(warnings["examples"]) == 5
    assert "QUARANTINED_ROWS" not in groups


# --- Rows nobody can classify -----------------------------------------------------------------


async def test_unclassifiable_rows_are_quarantined_and_hold_the_sync_until_confirmed(
    service, district_id, client
):
    # 16 students, a teacher and an aide, one row without a sourcedId and one without a role:
    # 2 of 20 rows (10%) quarantined, more than the 1% a sync may quarantine unnoticed.
    use_bundle(service, BUNDLES / "v1p1-unclassifiable-rows")
    token = token_for(service, district_id, Permission.MANAGE_SETTINGS)

    held = await sync(service, district_id)

    assert (held.status, held.quarantined) == ("held", 2)
    assert "2 of the 20 rows 'sis' gave (10%) could not be classified" in held.problem.message
    assert usage(service, district_id).active_students == 0  # nothing applied yet
    source = await sis_source(client, token)
    assert source["held"] and source["lastStatus"] == "HELD"
    assert "quarantined" in source["lastError"]
    assert source["quarantined"] == {
        "runId": held.run_id,
        "total": 2,
        "sample": [
            {
                "file": "users.csv",
                "line": 20,
                "column": None,
                "reason": "no sourcedId: the row cannot be told apart from others",
                "rows": 1,
                "sourceId": None,
            },
            {
                "file": "users.csv",
                "line": 21,
                "column": None,
                "reason": "no role: the row cannot be classified",
                "rows": 1,
                "sourceId": "s-98",
            },
        ],
    }

    confirmed = await graphql_data(client, token, CONFIRM, {"run": held.run_id})

    assert confirmed["confirmRosterSync"]["status"] == "APPLIED"
    assert confirmed["confirmRosterSync"]["usage"]["activeStudents"] == 16
    assert usage(service, district_id).staff == 2
    review = (await graphql_data(client, token, REVIEW))["countReview"]
    quarantined = next(group for group in review if group["reason"] == "QUARANTINED_ROWS")
    assert (quarantined["students"], quarantined["records"], quarantined["licensesFreed"]) == (
        0,
        2,
        0,
    )
    assert quarantined["examples"] == [
        "sis:users.csv:20: no sourcedId: the row cannot be told apart from others",
        "sis:users.csv:21: no role: the row cannot be classified",
    ]
    assert "not counted" in quarantined["explanation"]


def roster_with_quarantined(tmp_path: Path, *, rows: int, quarantined: int) -> Path:
    """A 1.1 bundle of ``rows`` rows: active students, and ``quarantined`` rows without a role."""
    students = [user_v1p1(f"s{number:04d}") for number in range(rows - quarantined)]
    unclassified = [user_v1p1(f"x{number:04d}", role="") for number in range(quarantined)]
    folder = tmp_path / f"q{quarantined}"
    folder.mkdir()
    return write_bundle(
        folder, {"manifest.csv": manifest(), "users.csv": users_csv(*students, *unclassified)}
    )


@pytest.mark.parametrize(
    ("quarantined", "status", "used"),
    [(2, "applied", 198), (3, "held", 0)],  # 1% of 200 rows is allowed; 1.5% is held
)
async def test_a_sync_is_held_only_when_more_than_the_allowed_share_is_quarantined(
    service, district_id, tmp_path, quarantined, status, used
):
    use_bundle(service, roster_with_quarantined(tmp_path, rows=200, quarantined=quarantined))

    outcome = await sync(service, district_id)

    assert (outcome.status, outcome.quarantined) == (status, quarantined)
    assert usage(service, district_id).active_students == used


async def test_the_allowed_share_is_a_setting_of_the_source(service, district_id):
    use_bundle(service, BUNDLES / "v1p1-unclassifiable-rows", max_quarantined_share=0.1)

    outcome = await sync(service, district_id)

    assert (outcome.status, outcome.quarantined) == ("applied", 2)
    assert usage(service, district_id).active_students == 16


async def test_a_clean_sync_replaces_what_the_last_one_reported(
    service, district_id, client, tmp_path
):
    use_bundle(service, BUNDLES / "v1p1-unclassifiable-rows", max_quarantined_share=0.1)
    await sync(service, district_id)
    clean = shutil.copytree(BUNDLES / "v1p1-unclassifiable-rows", tmp_path / "clean")
    lines = (clean / "users.csv").read_text().splitlines(keepends=True)
    (clean / "users.csv").write_text("".join(lines[:-2]))  # without the two unclassifiable rows
    use_bundle(service, clean)
    token = token_for(service, district_id, Permission.MANAGE_SETTINGS)

    outcome = await sync(service, district_id)

    assert (outcome.status, outcome.quarantined) == ("applied", 0)
    source = await sis_source(client, token)
    assert source["quarantined"] == {"runId": outcome.run_id, "total": 0, "sample": []}
    reasons = [
        group["reason"] for group in (await graphql_data(client, token, REVIEW))["countReview"]
    ]
    assert "QUARANTINED_ROWS" not in reasons


# --- Strict where it changes the count ------------------------------------------------------------


async def test_an_ambiguous_value_that_changes_the_count_still_fails_the_sync(
    service, district_id, client, tmp_path
):
    use_bundle(service, BUNDLES / "v1p1-sis-export")
    await sync(service, district_id)
    broken = shutil.copytree(BUNDLES / "v1p1-sis-export", tmp_path / "broken")
    data = (broken / "users.csv").read_bytes()
    data = data.replace(b"stu-1002,,", b"stu-1002,graduating,", 1)  # an unknown status
    data = data.replace(b",Yes,", b",maybe,", 1)  # enabled or not?
    data = data.replace(b",principal,", b",janitor,", 1)  # an unknown role
    (broken / "users.csv").write_bytes(data)
    use_bundle(service, broken)

    outcome = await sync(service, district_id)

    assert outcome.status == "failed"
    message = outcome.problem.message
    assert "line 3, column status: 'graduating' is not active or tobedeleted" in message
    assert "line 4, column enabledUser: 'maybe' is not true, false, 1, 0, yes or no" in message
    assert "line 11, column role: 'janitor' is not a OneRoster role" in message
    assert usage(service, district_id) == CASES["v1p1-sis-export"][0]  # the roster is kept
    source = await sis_source(client, token_for(service, district_id, Permission.MANAGE_SETTINGS))
    assert source["lastStatus"] == "FAILED"
    # What the failed sync read past is shown with it.
    assert source["warnings"]["runId"] == outcome.run_id
    assert source["warnings"]["total"] == 5
