"""OneRoster CSV bundles (1.1 and 1.2, zip or folder): what they yield, what the host counts from
them, and that every bad file or row is reported by file, line and column."""

from __future__ import annotations

import inspect
import io
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from licensing.orchestration.plugin_host import RosterRecordChecks, load_plugins, plugin_host
from licensing.settings import Settings
from licensing.storage.roster import UsageCounts, current_usage
from licensing.storage.roster_changes import apply_roster
from plugins.builtin.oneroster_csv import (
    ROLES_V1P2,
    USERS_V1P1,
    USERS_V1P2,
    OneRosterCsvSource,
    read_bundle,
)
from plugins.records import (
    DistrictRef,
    QuarantinedRow,
    RemovedRecord,
    RosterDelta,
    RosterFileError,
    SourceError,
    StudentRecord,
)
from tests.utils.districts import create_district

DISTRICT = DistrictRef(slug="riverside", official_name="Riverside", time_zone="UTC")
HEADER_V1P1 = ",".join(USERS_V1P1)
HEADER_V1P2 = ",".join(USERS_V1P2)
HEADER_ROLES = ",".join(ROLES_V1P2)


def manifest(version: str = "1.1", users: str = "bulk", roles: str | None = None) -> str:
    lines = ["propertyName,value", "manifest.version,1.0"]
    if version:
        lines.append(f"oneroster.version,{version}")
    lines += [
        "file.academicSessions,absent",
        "file.classes,absent",
        "file.enrollments,absent",
        "file.orgs,absent",
        f"file.users,{users}",
    ]
    if roles is not None:
        lines.append(f"file.roles,{roles}")
    lines += ["source.systemName,Test SIS", "source.systemCode,test"]
    return "\n".join(lines) + "\n"


def user_v1p1(
    source_id: str,
    *,
    status: str = "",
    enabled: str = "true",
    orgs: str = "org1",
    role: str = "student",
    identifier: str = "",
    grades: str = "",
    modified: str = "",
    user_ids: str = "",
    given: str = "",
    family: str = "",
    username: str = "",
) -> str:
    fields = {
        "sourcedId": source_id,
        "status": status,
        "dateLastModified": modified,
        "enabledUser": enabled,
        "orgSourcedIds": orgs,
        "role": role,
        "username": username,
        "userIds": user_ids,
        "givenName": given,
        "familyName": family,
        "identifier": identifier,
        "grades": grades,
    }
    return ",".join(_quoted(fields.get(column, "")) for column in USERS_V1P1)


def _quoted(value: str) -> str:
    return f'"{value}"' if "," in value else value


def users_csv(*rows: str, header: str = HEADER_V1P1) -> str:
    return header + "\n" + "".join(row + "\n" for row in rows)


def write_bundle(tmp_path: Path, files: dict[str, str], *, kind: str = "folder") -> Path:
    """The files as a folder, or as a zip bundle (files at its root)."""
    if kind == "folder":
        folder = tmp_path / "bundle"
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        return folder
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def fetch(path: Path, **options: object) -> list[Any]:
    """The records a bundle gives (a delta bundle's changes, RemovedRecord included)."""
    result = OneRosterCsvSource(plugin_host(Settings())).fetch_students(
        district=DISTRICT, options={"path": str(path), **options}
    )
    return list(result.records if isinstance(result, RosterDelta) else result)


def problems_of(path: Path, **options: object) -> RosterFileError:
    with pytest.raises(RosterFileError) as raised:
        fetch(path, **options)
    return raised.value


def where(error: RosterFileError) -> list[tuple[int, str | None]]:
    return [(problem.line, problem.column) for problem in error.problems]


def apply_and_count(service, records: list[StudentRecord], slug: str = "riverside") -> UsageCounts:
    """Apply the records as the district's "sis" roster with the host's rule; its usage."""
    district_id = create_district(service, slug=slug)
    with service.database.write() as session:
        apply_roster(
            session,
            district_id=district_id,
            source="sis",
            records=records,
            replace=True,
            now=service.clock(),
        )
        return current_usage(session, district_id=district_id)


# A district's 1.1 export: every case the counting rule has to get right.
DISTRICT_V1P1 = users_csv(
    # Active (blank bulk status), in two schools; the district's student number is 1001.
    user_v1p1(
        "s1",
        orgs="org1,org2",
        identifier="1001",
        grades="07,08",
        modified="2026-08-15T09:30:00.000Z",
        user_ids="{LDAP:ava.garcia},{SIS:1001}",
        given="Ava",
        family="Garcia",
        username="ava.garcia",
    ),
    user_v1p1("s2", status="active", enabled="True", identifier="1002"),
    user_v1p1("s3", status="tobedeleted", identifier="1003"),
    user_v1p1("s4", status="active", enabled="false", identifier="1004"),
    user_v1p1("s5", enabled="FALSE", identifier="1005"),
    # The same person as s1 under a second sourcedId (a second school's record).
    user_v1p1("s6", status="active", enabled="TRUE", orgs="org2", identifier="1001"),
    # No identifier: the sourcedId is the person key.
    user_v1p1("s7"),
    user_v1p1("t1", role="teacher", identifier="E-1"),
    user_v1p1("t2", role="administrator", orgs="district"),
    user_v1p1("t3", role="aide"),
    user_v1p1("g1", role="guardian"),
    user_v1p1("p1", role="parent"),
    user_v1p1("r1", role="relative"),
)


@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_a_v1p1_bundle_counts_distinct_active_enabled_students(tmp_path, service, kind):
    path = write_bundle(
        tmp_path, {"manifest.csv": manifest(), "users.csv": DISTRICT_V1P1}, kind=kind
    )

    records = fetch(path)

    assert [record.source_id for record in records] == [
        "s1", "s2", "s3", "s4", "s5", "s6", "s7", "t1", "t2", "t3", "g1", "p1", "r1",
    ]  # fmt: skip
    # Counted by hand: people 1001 (s1 and s6), 1002 and s7. Not counted: s3 (tobedeleted),
    # s4 and s5 (disabled); three staff; guardian, parent and relative are nobody to the count.
    assert apply_and_count(service, records) == UsageCounts(
        active_students=3,
        inactive_students=3,
        staff=3,
        devices=0,
        duplicates_collapsed=1,
        disabled_students=2,
    )


def test_a_v1p1_user_becomes_one_record_with_every_field_mapped(tmp_path):
    path = write_bundle(tmp_path, {"manifest.csv": manifest(), "users.csv": DISTRICT_V1P1})

    records = {record.source_id: record for record in fetch(path)}

    assert records["s1"] == StudentRecord(
        source_id="s1",
        role="student",
        status="active",
        enabled=True,
        person_key="1001",
        given_name="Ava",
        family_name="Garcia",
        username="ava.garcia",
        grade="07",
        schools=("org1", "org2"),
        primary_school="org1",
        last_modified=datetime(2026, 8, 15, 9, 30, tzinfo=UTC),
        raw_status="",
    )
    assert (records["s3"].status, records["s3"].raw_status) == ("tobedeleted", "tobedeleted")
    assert [records[name].enabled for name in ("s2", "s4", "s5", "s6")] == [
        True,
        False,
        False,
        True,
    ]
    assert records["s7"].person_key == "s7"
    assert [records[name].role for name in ("t1", "t2", "t3", "g1", "p1", "r1")] == [
        "teacher",
        "administrator",
        "aide",
        "guardian",
        "parent",
        "relative",
    ]


def test_fetch_students_streams_records_one_at_a_time(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest(),
            "users.csv": users_csv(user_v1p1("s1"), user_v1p1("s2", enabled="maybe")),
        },
    )

    records = OneRosterCsvSource(plugin_host(Settings())).fetch_students(
        district=DISTRICT, options={"path": str(path)}
    )

    assert inspect.isgenerator(records)
    # The first record comes before the bad second row is even read...
    assert next(records).source_id == "s1"
    # ...and the bad row still fails the whole sync (the host discards what it staged).
    with pytest.raises(RosterFileError):
        next(records)


def test_dates_without_a_zone_are_utc_and_other_zones_are_converted(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest(),
            "users.csv": users_csv(
                user_v1p1("s1", modified="2026-08-15"),
                user_v1p1("s2", modified="2026-08-15T09:30:00"),
                user_v1p1("s3", modified="2026-08-15T09:30:00-05:00"),
            ),
        },
    )

    assert [record.last_modified for record in fetch(path)] == [
        datetime(2026, 8, 15, tzinfo=UTC),
        datetime(2026, 8, 15, 9, 30, tzinfo=UTC),
        datetime(2026, 8, 15, 14, 30, tzinfo=UTC),
    ]


def test_a_byte_order_mark_and_extension_columns_are_allowed(tmp_path):
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "manifest.csv").write_bytes(b"\xef\xbb\xbf" + manifest().encode())
    (folder / "users.csv").write_bytes(
        b"\xef\xbb\xbf"
        + users_csv(
            user_v1p1("s1") + ",Room 12", header=HEADER_V1P1 + ",metadata.homeRoom"
        ).encode()
    )

    assert [record.source_id for record in fetch(folder)] == ["s1"]


def test_a_zip_whose_files_are_in_one_folder_is_read(tmp_path):
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("export-2026-08-15/manifest.csv", manifest())
        archive.writestr("export-2026-08-15/users.csv", users_csv(user_v1p1("s1")))

    assert [record.source_id for record in fetch(path)] == ["s1"]


def test_a_bad_enabled_user_names_the_file_line_and_column(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest(),
            "users.csv": users_csv(user_v1p1("s1"), user_v1p1("s2", enabled="maybe")),
        },
        kind="zip",
    )

    error = problems_of(path)

    assert error.path == str(path / "users.csv")
    assert where(error) == [(3, "enabledUser")]
    assert "users.csv" in str(error)
    assert "line 3, column enabledUser: 'maybe' is not true, false, 1, 0, yes or no" in str(error)


def test_every_bad_row_is_reported_together_and_only_values_that_change_the_count_are_bad(
    tmp_path,
):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest(),
            "users.csv": users_csv(
                user_v1p1("s1", enabled=""),  # bad: enabled or not decides the count
                user_v1p1("s2", enabled="1"),
                user_v1p1("s3", status="gone"),  # bad: an unknown status
                user_v1p1("s4", modified="15/08/2026"),  # a warning: counting needs no date
                user_v1p1(""),  # quarantined: no id
                user_v1p1("s6", role="janitor"),  # bad: an unknown role
                user_v1p1("s7", role="districtAdministrator"),  # a 1.2 word: staff
                "s8,active,,true",  # quarantined: too few fields
                user_v1p1("s9"),
                user_v1p1("s10", enabled="maybe", role="janitor"),
            ),
        },
    )

    error = problems_of(path)

    assert where(error) == [
        (2, "enabledUser"),
        (4, "status"),
        (7, "role"),
        (11, "enabledUser"),
        (11, "role"),
    ]


def test_more_than_a_thousand_problems_stop_the_read_at_once(tmp_path):
    bad = [user_v1p1(f"s{number}", enabled="maybe") for number in range(1500)]
    path = write_bundle(tmp_path, {"manifest.csv": manifest(), "users.csv": users_csv(*bad)})

    error = problems_of(path)

    assert len(error.problems) == 1001
    assert error.problems[-1].line == 1002


def test_a_header_without_a_column_the_count_depends_on_names_each_one(tmp_path):
    header = (
        HEADER_V1P1.replace("enabledUser", "enabledUsr")
        .replace(",status", "")
        .replace(",password", "")
    )
    path = write_bundle(
        tmp_path,
        {"manifest.csv": manifest(), "users.csv": users_csv(header=header + ",school")},
    )

    # Checked when the source is asked, before any record.
    with pytest.raises(RosterFileError) as raised:
        OneRosterCsvSource(plugin_host(Settings())).fetch_students(
            district=DISTRICT, options={"path": str(path)}
        )

    error = raised.value
    assert error.path.endswith("users.csv")
    # password is not read and school is an unknown column: neither is a problem.
    assert where(error) == [(1, "status"), (1, "enabledUser")]
    assert "missing column" in str(error.problems[0])
    assert "is 'enabledUsr' it, misspelt?" in str(error.problems[1])


def test_a_v1p2_header_in_a_v1p1_bundle_is_a_bad_header(tmp_path):
    path = write_bundle(
        tmp_path, {"manifest.csv": manifest("1.1"), "users.csv": users_csv(header=HEADER_V1P2)}
    )

    error = problems_of(path)

    assert where(error) == [(1, "role")]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"users.csv": users_csv()}, r"has no manifest\.csv"),
        ({"manifest.csv": manifest()}, r"has no users\.csv"),
        (
            {"manifest.csv": manifest(users="absent"), "users.csv": users_csv()},
            "file.users is absent",
        ),
        ({"manifest.csv": manifest(users="full"), "users.csv": users_csv()}, "'full', not bulk"),
        (
            {"manifest.csv": manifest().replace("manifest.version,1.0", "manifest.version,2.0")},
            r"manifest\.version is '2\.0'",
        ),
        ({"manifest.csv": manifest("1.0"), "users.csv": users_csv()}, r"oneroster\.version '1\.0'"),
        (
            {"manifest.csv": "property,value\nmanifest.version,1.0\n"},
            "a manifest's is 'propertyName,value'",
        ),
        (
            {"manifest.csv": manifest().replace("file.users,bulk\n", ""), "users.csv": users_csv()},
            r"no file\.users property",
        ),
    ],
)
def test_a_bundle_the_source_cannot_use_is_a_source_error_naming_the_file(tmp_path, files, message):
    path = write_bundle(tmp_path, files, kind="zip")

    with pytest.raises(SourceError, match=message) as raised:
        fetch(path)

    assert not isinstance(raised.value, RosterFileError)


def test_a_missing_bundle_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="No OneRoster bundle"):
        fetch(tmp_path / "missing.zip")
    with pytest.raises(SourceError, match="give its path"):
        OneRosterCsvSource(plugin_host(Settings())).fetch_students(district=DISTRICT, options={})


def test_a_truncated_zip_is_a_source_error(tmp_path):
    whole = write_bundle(
        tmp_path, {"manifest.csv": manifest(), "users.csv": DISTRICT_V1P1}, kind="zip"
    )
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])

    with pytest.raises(SourceError, match=r"truncated\.zip is not a readable zip file"):
        fetch(truncated)


def test_a_file_that_is_not_a_zip_is_a_source_error(tmp_path):
    path = tmp_path / "roster.zip"
    path.write_text("sourcedId,status\n")

    with pytest.raises(SourceError, match="not a readable zip file"):
        fetch(path)


def test_a_zip_member_damaged_in_the_middle_is_a_source_error(tmp_path):
    buffer = io.BytesIO()
    rows = [user_v1p1(f"s{number:05d}") for number in range(2000)]
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("manifest.csv", manifest())
        archive.writestr("users.csv", users_csv(*rows))
    data = bytearray(buffer.getvalue())
    middle = data.find(b"s01000,")
    data[middle : middle + 6] = b"x01000"  # same length: only the checksum can tell
    path = tmp_path / "damaged.zip"
    path.write_bytes(bytes(data))

    with pytest.raises(SourceError, match=r"users\.csv is damaged"):
        fetch(path)


def test_a_delta_bundle_is_refused_unless_allowed(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest(users="delta"),
            "users.csv": users_csv(
                user_v1p1("s1", status="active"), user_v1p1("s2", status="tobedeleted")
            ),
        },
    )

    with pytest.raises(SourceError, match=r"file\.users is delta"):
        fetch(path)
    records = fetch(path, allow_delta=True)
    # Applied as changes: s1 is added or updated, s2 (tobedeleted) is removed.
    assert [
        (record.source_id, record.status) if isinstance(record, StudentRecord) else record
        for record in records
    ] == [("s1", "active"), RemovedRecord("s2")]


def test_a_delta_file_must_give_every_status(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest(users="delta"),
            "users.csv": users_csv(user_v1p1("s1", status="active"), user_v1p1("s2")),
        },
    )

    error = problems_of(path, allow_delta=True)

    assert where(error) == [(3, "status")]
    assert "delta file gives active or tobedeleted" in str(error)


# --- OneRoster 1.2: roles in roles.csv ----------------------------------------------------------


def user_v1p2(
    source_id: str,
    *,
    status: str = "",
    enabled: str = "true",
    identifier: str = "",
    master: str = "",
    primary_org: str = "",
    grades: str = "",
) -> str:
    fields = {
        "sourcedId": source_id,
        "status": status,
        "enabledUser": enabled,
        "username": source_id,
        "givenName": "Given",
        "familyName": "Family",
        "identifier": identifier,
        "grades": grades,
        "userMasterIdentifier": master,
        "primaryOrgSourcedId": primary_org,
    }
    return ",".join(_quoted(fields.get(column, "")) for column in USERS_V1P2)


def role_row(
    user: str,
    role: str,
    org: str,
    *,
    role_type: str = "primary",
    status: str = "",
    end: str = "",
    number: list[int] = [0],  # noqa: B006 - a counter for unique role sourcedIds
) -> str:
    number[0] += 1
    fields = {
        "sourcedId": f"role{number[0]}",
        "status": status,
        "userSourcedId": user,
        "roleType": role_type,
        "role": role,
        "orgSourcedId": org,
        "endDate": end,
        "beginDate": "2025-08-20" if end else "",
    }
    return ",".join(fields.get(column, "") for column in ROLES_V1P2)


DISTRICT_V1P2_USERS = users_csv(
    user_v1p2("u1", master="M-1", identifier="1001", grades="07"),
    user_v1p2("u2", identifier="1002"),
    user_v1p2("u3", identifier="1001"),  # the same person as u1 by identifier only
    user_v1p2("u4", master="M-1"),  # the same person as u1 by userMasterIdentifier
    user_v1p2("u5", enabled="False"),
    user_v1p2("u6", status="tobedeleted"),
    user_v1p2("u7", primary_org="org2"),
    user_v1p2("t1"),
    user_v1p2("g1"),
    header=HEADER_V1P2,
)
DISTRICT_V1P2_ROLES = (
    HEADER_ROLES
    + "\n"
    + "\n".join(
        [
            role_row("u1", "student", "org1", end="2026-06-15"),
            role_row("u1", "student", "org2", role_type="secondary", end="2026-06-30"),
            role_row("u2", "student", "org1"),
            role_row("u3", "student", "org2"),
            role_row("u4", "student", "org1"),
            role_row("u5", "student", "org1"),
            role_row("u6", "student", "org1"),
            # A teacher who is also a student (a secondary role): a student, for the host too.
            role_row("u7", "teacher", "org1"),
            role_row("u7", "student", "org2", role_type="secondary"),
            role_row("t1", "teacher", "org1"),
            role_row("t1", "districtAdministrator", "district", role_type="secondary"),
            role_row("t1", "student", "org1", status="tobedeleted"),  # being removed: ignored
            role_row("t1", "ext:mentor", "org1", role_type="secondary"),  # an extension: ignored
            role_row("g1", "guardian", "org1"),
        ]
    )
    + "\n"
)


@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_a_v1p2_bundle_takes_roles_and_orgs_from_roles_csv(tmp_path, service, kind):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest("1.2", roles="bulk"),
            "users.csv": DISTRICT_V1P2_USERS,
            "roles.csv": DISTRICT_V1P2_ROLES,
        },
        kind=kind,
    )

    records = {record.source_id: record for record in fetch(path)}

    assert records["u1"] == StudentRecord(
        source_id="u1",
        role="student",
        status="active",
        enabled=True,
        person_key="M-1",
        given_name="Given",
        family_name="Family",
        username="u1",
        grade="07",
        schools=("org1", "org2"),
        primary_school="org1",
        enrollment_end=date(2026, 6, 30),  # the last end of u1's student roles
        raw_status="",
    )
    assert records["u3"].person_key == "1001"
    assert records["u2"].person_key == "1002"
    assert (records["u7"].role, records["u7"].primary_school, records["u7"].schools) == (
        "student",
        "org2",  # the student role is secondary: the user's primaryOrgSourcedId says
        ("org2", "org1"),
    )
    assert (records["t1"].role, records["t1"].schools) == ("teacher", ("org1", "district"))
    assert records["g1"].role == "guardian"
    # Counted by hand: M-1 (u1 and u4), 1002, 1001 (u3: no master identifier, so its own
    # person) and u7. u5 is disabled, u6 tobedeleted; t1 is staff; g1 nobody to the count.
    assert apply_and_count(service, list(records.values())) == UsageCounts(
        active_students=4,
        inactive_students=2,
        staff=1,
        devices=0,
        duplicates_collapsed=1,
        disabled_students=1,
    )


def test_a_v1p2_bundle_is_recognised_by_its_header_when_the_manifest_does_not_say(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest("", roles="bulk"),
            "users.csv": users_csv(user_v1p2("u1"), header=HEADER_V1P2),
            "roles.csv": HEADER_ROLES + "\n" + role_row("u1", "student", "org1") + "\n",
        },
    )

    assert [(record.source_id, record.role) for record in fetch(path)] == [("u1", "student")]


def test_a_v1p2_header_may_leave_out_resource_sourced_ids(tmp_path):
    columns = [column for column in USERS_V1P2 if column != "resourceSourcedIds"]
    row = dict(zip(USERS_V1P2, user_v1p2("u1").split(","), strict=True))
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest("1.2", roles="bulk"),
            "users.csv": ",".join(columns) + "\n" + ",".join(row[c] for c in columns) + "\n",
            "roles.csv": HEADER_ROLES + "\n" + role_row("u1", "student", "org1") + "\n",
        },
    )

    assert [record.source_id for record in fetch(path)] == ["u1"]


def test_a_v1p2_bundle_without_roles_csv_is_a_source_error(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest("1.2", roles="bulk"),
            "users.csv": users_csv(user_v1p2("u1"), header=HEADER_V1P2),
        },
    )

    with pytest.raises(SourceError, match=r"has no roles\.csv"):
        fetch(path)


def test_bad_roles_rows_name_roles_csv_and_forgivable_ones_are_not_bad(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest("1.2", roles="bulk"),
            "users.csv": users_csv(user_v1p2("u1"), header=HEADER_V1P2),
            "roles.csv": HEADER_ROLES
            + "\n"
            + "\n".join(
                [
                    role_row("u1", "student", "org1", role_type="main"),  # taken as secondary
                    role_row("u1", "janitor", "org1"),  # bad: an unknown role
                    role_row("u1", "student", "org1", end="June"),  # left blank
                    role_row("", "student", "org1"),  # quarantined: nobody's role
                    role_row("u1", "student", ""),  # no school known
                    role_row("u1", "student", "org1", status="gone"),  # bad: unknown status
                ]
            )
            + "\n",
        },
    )

    error = problems_of(path)

    assert error.path.endswith("roles.csv")
    assert where(error) == [(3, "role"), (7, "status")]


def test_a_v1p2_user_without_a_role_is_quarantined(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest("1.2", roles="bulk"),
            "users.csv": users_csv(user_v1p2("u1"), user_v1p2("u2"), header=HEADER_V1P2),
            "roles.csv": HEADER_ROLES + "\n" + role_row("u1", "student", "org1") + "\n",
        },
    )

    items = fetch(path)

    assert [item.source_id for item in items if isinstance(item, StudentRecord)] == ["u1"]
    assert [item for item in items if isinstance(item, QuarantinedRow)] == [
        QuarantinedRow(
            reason="no role: the user has no row in roles.csv, so cannot be classified",
            file="users.csv",
            line=3,
            source_id="u2",
        )
    ]


def test_a_v1p2_delta_deletes_a_user_with_the_roles_being_removed(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest("1.2", users="delta", roles="delta"),
            "users.csv": users_csv(
                user_v1p2("u1", status="tobedeleted"),
                user_v1p2("u2", status="active"),
                header=HEADER_V1P2,
            ),
            "roles.csv": HEADER_ROLES
            + "\n"
            + "\n".join(
                [
                    role_row("u1", "student", "org1", status="tobedeleted"),
                    role_row("u2", "student", "org1", status="tobedeleted"),
                    role_row("u2", "teacher", "org2", status="active"),
                ]
            )
            + "\n",
        },
    )

    records = fetch(path, allow_delta=True)

    assert records[0] == RemovedRecord("u1")
    # u2 moved from student to teacher: the role being removed is not theirs any more.
    assert [(r.source_id, r.status, r.role, r.schools) for r in records[1:]] == [
        ("u2", "active", "teacher", ("org2",)),
    ]


def test_a_v1p2_delta_removes_a_user_without_any_role_left(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest("1.2", users="delta", roles="delta"),
            "users.csv": users_csv(
                user_v1p2("u1", status="tobedeleted"),
                user_v1p2("u2", status="active"),
                header=HEADER_V1P2,
            ),
            "roles.csv": HEADER_ROLES
            + "\n"
            + role_row("u2", "student", "org1", status="active")
            + "\n",
        },
    )

    records = fetch(path, allow_delta=True)

    assert records[0] == RemovedRecord("u1")
    assert [(r.source_id, r.role) for r in records[1:]] == [("u2", "student")]


def test_a_v1p2_user_with_only_extension_roles_is_passed_on_with_one(tmp_path, service):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest("1.2", roles="bulk"),
            "users.csv": users_csv(user_v1p2("u1"), user_v1p2("u2"), header=HEADER_V1P2),
            "roles.csv": HEADER_ROLES
            + "\n"
            + "\n".join(
                [
                    role_row("u1", "ext:counselor", "org1"),
                    role_row("u1", "ext:mentor", "org2", role_type="secondary"),
                    role_row("u2", "ext:mentor", "org1"),
                    role_row("u2", "student", "org1", role_type="secondary"),
                ]
            )
            + "\n",
        },
    )

    records = fetch(path)

    assert [(r.source_id, r.role, r.schools) for r in records] == [
        ("u1", "ext:counselor", ("org1", "org2")),
        ("u2", "student", ("org1",)),  # an extension role adds nothing to a real one
    ]
    # The host counts nobody by an extension role: u1 is neither student nor staff.
    assert apply_and_count(service, records) == UsageCounts(
        active_students=1,
        inactive_students=0,
        staff=0,
        devices=0,
        duplicates_collapsed=0,
        disabled_students=0,
    )


def test_hook_register_roster_sources_lists_oneroster_csv(settings, tmp_path):
    source = load_plugins(settings, load_entry_points=False).roster_source("oneroster_csv")

    assert source.name == "oneroster_csv"
    assert "OneRoster" in source.description
    path = write_bundle(tmp_path, {"manifest.csv": manifest(), "users.csv": DISTRICT_V1P1})
    records = source.fetch_students(district=DISTRICT, options={"path": str(path)})
    assert len(list(records)) == 13


def test_read_bundle_is_the_same_reader(tmp_path):
    path = write_bundle(tmp_path, {"manifest.csv": manifest(), "users.csv": DISTRICT_V1P1})

    assert list(read_bundle(path, checks=RosterRecordChecks())) == fetch(path)


def test_v1p2_values_the_roster_cannot_hold_are_reported_at_their_file_line_and_column(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest("1.2", roles="bulk"),
            "users.csv": users_csv(
                user_v1p2("u1"),
                user_v1p2("u2", master="M\x002"),
                user_v1p2("u3", identifier="k" * 256),
                header=HEADER_V1P2,
            ),
            "roles.csv": HEADER_ROLES
            + "\n"
            + "\n".join(
                [
                    role_row("u1", "student", "org1"),
                    role_row("u2", "student", "o" * 256),
                    role_row("u3", "student", "org1"),
                ]
            )
            + "\n",
        },
    )

    with pytest.raises(RosterFileError) as roles_error:
        list(fetch(path))
    assert roles_error.value.path.endswith("roles.csv")
    assert [str(problem) for problem in roles_error.value.problems] == [
        "line 3, column orgSourcedId: 256 characters, more than the 255 this field holds"
    ]

    (path / "roles.csv").write_text(
        HEADER_ROLES
        + "\n"
        + "\n".join(role_row(user, "student", "org1") for user in ("u1", "u2", "u3"))
        + "\n"
    )
    with pytest.raises(RosterFileError) as users_error:
        list(fetch(path))
    assert users_error.value.path.endswith("users.csv")
    assert [str(problem) for problem in users_error.value.problems] == [
        "line 3, column userMasterIdentifier: holds a NUL character (\\x00), which cannot be stored",
        "line 4, column identifier: 256 characters, more than the 255 this field holds",
    ]


# --- Intake: files as districts deliver them ---------------------------------------------------


def facts(items: list) -> list:
    return [item for item in items if not isinstance(item, StudentRecord)]


def people(items: list) -> list[StudentRecord]:
    return [item for item in items if isinstance(item, StudentRecord)]


def write_bytes_bundle(tmp_path: Path, users: bytes) -> Path:
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "manifest.csv").write_text(manifest())
    (folder / "users.csv").write_bytes(users)
    return folder


def test_column_names_match_regardless_of_letter_case_and_spaces(tmp_path):
    header = ",".join(f" {column.upper()} " for column in USERS_V1P1)
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest(),
            "users.csv": users_csv(user_v1p1("s1", grades="07", role="Student"), header=header),
        },
    )

    items = fetch(path)

    assert [(r.source_id, r.role, r.grade) for r in people(items)] == [("s1", "student", "07")]
    assert facts(items) == []


def test_unknown_and_misspelt_columns_are_ignored_with_a_warning(tmp_path):
    header = HEADER_V1P1.replace("grades", "grdes") + ",ext_vendor_x,userId,metadata.room"
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest(),
            "users.csv": users_csv(user_v1p1("s1", grades="07") + ",v,u,12", header=header),
        },
    )

    items = fetch(path)

    assert [(r.source_id, r.grade) for r in people(items)] == [("s1", None)]
    assert [(w.file, w.line, w.column) for w in facts(items)] == [
        ("users.csv", 1, "grdes"),
        ("users.csv", 1, "ext_vendor_x"),
        ("users.csv", 1, "userId"),
    ]
    assert "did you mean 'grades'?" in facts(items)[0].message


@pytest.mark.parametrize(
    ("written", "enabled"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("Yes", True),
        (" false ", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("NO", False),
    ],
)
def test_enabled_user_accepts_true_false_1_0_yes_no_in_any_case(tmp_path, written, enabled):
    path = write_bundle(
        tmp_path,
        {"manifest.csv": manifest(), "users.csv": users_csv(user_v1p1("s1", enabled=written))},
    )

    assert [record.enabled for record in fetch(path)] == [enabled]


def test_role_words_of_the_other_version_keep_their_meaning(tmp_path, service):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest(),
            "users.csv": users_csv(
                user_v1p1("s1"),
                user_v1p1("p1", role="principal"),
                user_v1p1("c1", role="Counselor"),
                user_v1p1("d1", role="districtadministrator"),
                user_v1p1("x1", role="ext:volunteer"),
            ),
        },
    )

    records = fetch(path)

    assert [record.role for record in records] == [
        "student",
        "principal",
        "counselor",
        "districtAdministrator",
        "ext:volunteer",
    ]
    counts = apply_and_count(service, records)
    assert (counts.active_students, counts.staff) == (1, 3)


def test_crlf_a_byte_order_mark_and_quoted_commas_and_line_breaks_are_read(tmp_path):
    rows = [
        HEADER_V1P1,
        user_v1p1("s1", orgs="org1,org2", family="Garcia, Jr."),
        user_v1p1("s2", family='"Line\r\nBreak"')
        .replace('""Line', '"Line')
        .replace('Break""', 'Break"'),
        user_v1p1("s3"),
    ]
    folder = write_bytes_bundle(tmp_path, b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n")

    items = fetch(folder)

    assert [(r.source_id, r.schools, r.family_name) for r in people(items)] == [
        ("s1", ("org1", "org2"), "Garcia, Jr."),
        ("s2", ("org1",), "Line\r\nBreak"),
        ("s3", ("org1",), None),
    ]
    assert facts(items) == []


def test_a_windows_1252_file_is_read_and_named_in_a_warning(tmp_path):
    users = users_csv(user_v1p1("s1", given="José", family="Peña"), user_v1p1("s2"))
    folder = write_bytes_bundle(tmp_path, users.replace("\n", "\r\n").encode("cp1252"))

    items = fetch(folder)

    assert [(r.given_name, r.family_name) for r in people(items)] == [
        ("José", "Peña"),
        (None, None),
    ]
    assert [(w.file, w.message) for w in facts(items)] == [
        (
            "users.csv",
            "users.csv is Windows-1252 (Latin-1) text, not UTF-8: it is read as Windows-1252 "
            "(Latin-1). Export it as UTF-8 to be sure names with accents come out right.",
        )
    ]


def test_windows_1252_found_past_the_first_bytes_is_read_on_from_where_it_starts(tmp_path):
    plain = [user_v1p1(f"s{number:05d}", family="Plain Ascii") for number in range(2000)]
    users = users_csv(*plain, user_v1p1("late", given="Zoë"), user_v1p1("last"))
    folder = write_bytes_bundle(tmp_path, users.encode("cp1252"))
    assert len(users) > 100_000  # beyond what is looked at first

    items = fetch(folder)

    records = people(items)
    assert len(records) == 2002
    assert [r.source_id for r in records[:3]] == ["s00000", "s00001", "s00002"]
    assert (records[-2].source_id, records[-2].given_name) == ("late", "Zoë")
    (warning,) = facts(items)
    assert "users.csv is Windows-1252 (Latin-1) text, not UTF-8" in warning.message


def test_a_file_mixing_utf8_and_another_encoding_is_a_clear_error(tmp_path):
    plain = [user_v1p1(f"s{number:05d}", given="Zoë") for number in range(2000)]
    users = users_csv(*plain).encode() + user_v1p1("late", given="Zoë").encode("cp1252") + b"\n"
    folder = write_bytes_bundle(tmp_path, users)

    error = problems_of(folder)

    assert error.path.endswith("users.csv")
    assert "it mixes encodings. Export it again as UTF-8" in str(error)


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-32"])
def test_utf16_and_utf32_files_are_read_with_a_warning(tmp_path, codec):
    folder = write_bytes_bundle(tmp_path, users_csv(user_v1p1("s1", given="Søren")).encode(codec))

    items = fetch(folder)

    assert [(r.source_id, r.given_name) for r in people(items)] == [("s1", "Søren")]
    assert "UTF-" in facts(items)[0].message


def test_a_spreadsheet_saved_as_users_csv_is_a_clear_error(tmp_path):
    folder = write_bytes_bundle(tmp_path, b"PK\x03\x04" + bytes(range(256)) * 40)

    with pytest.raises(
        SourceError, match=r"users\.csv cannot be read as text: it is a zip"
    ) as raised:
        fetch(folder)

    assert not isinstance(raised.value, RosterFileError)


def test_rows_that_do_not_line_up_with_the_header_are_quarantined(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest(),
            "users.csv": users_csv(
                user_v1p1("s1"),
                "s2,active,,true",  # cut short
                user_v1p1("s3") + ",Room 12",  # a value past the last column
                user_v1p1("s4") + ",,",  # empty fields past the last column: read
            ),
        },
    )

    items = fetch(path)

    assert [r.source_id for r in people(items)] == ["s1", "s4"]
    assert [(q.line, q.reason) for q in facts(items) if isinstance(q, QuarantinedRow)] == [
        (3, "4 fields where the header has 18"),
        (4, "19 fields where the header has 18"),
    ]


def test_unreadable_dates_are_left_blank_with_one_warning_for_all_such_rows(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest(),
            "users.csv": users_csv(
                user_v1p1("s1", modified="15/08/2026"),
                user_v1p1("s2", modified="2026-08-15T09:30:00Z"),
                user_v1p1("s3", modified="yesterday"),
            ),
        },
    )

    items = fetch(path)

    assert [r.last_modified for r in people(items)] == [
        None,
        datetime(2026, 8, 15, 9, 30, tzinfo=UTC),
        None,
    ]
    (warning,) = facts(items)
    assert (warning.line, warning.column, warning.rows) == (2, "dateLastModified", 2)
    assert "'15/08/2026' is not an ISO 8601 date and time" in warning.message


# --- Enrollment ends: the last end of a user's enrollments (1.1) or roles (1.2) ---------------------

ENROLLMENTS_HEADER = (
    "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,"
    "primary,beginDate,endDate"
)


def enrollment(user: str, end: str, *, role: str = "student", status: str = "active") -> str:
    return f"e-{user}-{end or 'open'},{status},,class1,org1,{user},{role},false,2025-08-20,{end}"


def v1p1_with_enrollments(tmp_path, rows: list[str], *, listed: str = "bulk") -> Path:
    return write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest().replace(
                "file.enrollments,absent", f"file.enrollments,{listed}"
            ),
            "users.csv": users_csv(
                *(user_v1p1(name) for name in ("left", "enrolled", "no-classes")),
                user_v1p1("teacher", role="teacher"),
            ),
            "enrollments.csv": "\n".join([ENROLLMENTS_HEADER, *rows]) + "\n",
        },
    )


ENROLLMENT_ROWS = [
    enrollment("left", "2026-01-15"),
    enrollment("left", "2026-06-12"),
    enrollment("left", "2027-06-15", status="tobedeleted"),  # being removed: not an enrollment
    enrollment("enrolled", "2026-06-12"),
    enrollment("enrolled", ""),  # open-ended
    enrollment("teacher", "2026-06-12", role="teacher"),
]


def test_a_v1p1_bundle_takes_the_last_end_of_each_students_enrollments(tmp_path):
    path = v1p1_with_enrollments(tmp_path, ENROLLMENT_ROWS)

    ends = {record.source_id: record.enrollment_end for record in fetch(path)}

    assert ends == {
        "left": date(2026, 6, 12),
        "enrolled": None,  # still enrolled in one class
        "no-classes": None,  # the file does not say
        "teacher": None,  # only students' enrollments are read
    }


def test_enrollments_are_read_only_when_the_manifest_lists_them_in_bulk(tmp_path):
    path = v1p1_with_enrollments(tmp_path, ENROLLMENT_ROWS, listed="absent")

    assert {record.enrollment_end for record in fetch(path)} == {None}


def test_an_unreadable_enrollment_date_is_taken_as_still_enrolled_and_fails_nothing(tmp_path):
    path = v1p1_with_enrollments(
        tmp_path,
        [enrollment("left", "2026-06-12"), enrollment("left", "June 30"), "a,row,too,short"],
    )

    ends = {record.source_id: record.enrollment_end for record in fetch(path)}

    assert ends["left"] is None


def test_a_v1p2_students_end_is_the_last_of_their_student_roles(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest("1.2", roles="bulk"),
            "users.csv": users_csv(
                *(user_v1p2(name) for name in ("left", "enrolled", "also-teaching")),
                header=HEADER_V1P2,
            ),
            "roles.csv": "\n".join(
                [
                    HEADER_ROLES,
                    role_row("left", "student", "org1", end="2026-06-12"),
                    role_row("left", "student", "org2", role_type="secondary", end="2026-01-15"),
                    role_row("enrolled", "student", "org1", end="2026-06-12"),
                    role_row("enrolled", "student", "org2", role_type="secondary"),
                    role_row("also-teaching", "teacher", "org1"),
                    role_row(
                        "also-teaching", "student", "org2", role_type="secondary", end="2026-06-12"
                    ),
                ]
            )
            + "\n",
        },
    )

    ends = {record.source_id: record.enrollment_end for record in fetch(path)}

    assert ends == {
        "left": date(2026, 6, 12),
        "enrolled": None,
        "also-teaching": date(2026, 6, 12),  # a student: the open teacher role is not theirs
    }
