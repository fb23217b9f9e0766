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
            "users.csv": users_csv(user_v1p1("s1"), user_v1p1("s2", enabled="yes")),
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
            "users.csv": users_csv(user_v1p1("s1"), user_v1p1("s2", enabled="yes")),
        },
        kind="zip",
    )

    error = problems_of(path)

    assert error.path == str(path / "users.csv")
    assert where(error) == [(3, "enabledUser")]
    assert "users.csv" in str(error)
    assert "line 3, column enabledUser: 'yes' is not true or false" in str(error)


def test_every_bad_row_is_reported_together(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest(),
            "users.csv": users_csv(
                user_v1p1("s1", enabled=""),
                user_v1p1("s2", enabled="1"),
                user_v1p1("s3", status="gone"),
                user_v1p1("s4", modified="15/08/2026"),
                user_v1p1(""),
                user_v1p1("s6", role="janitor"),
                user_v1p1("s7", role="districtAdministrator"),  # a 1.2 word, not 1.1's
                "s8,active,,true",
                user_v1p1("s9"),
            ),
        },
    )

    error = problems_of(path)

    assert where(error) == [
        (2, "enabledUser"),
        (3, "enabledUser"),
        (4, "status"),
        (5, "dateLastModified"),
        (6, "sourcedId"),
        (7, "role"),
        (8, "role"),
        (9, None),
    ]
    assert "4 fields where the header has 18" in str(error)


def test_more_than_a_thousand_problems_stop_the_read_at_once(tmp_path):
    bad = [user_v1p1(f"s{number}", enabled="yes") for number in range(1500)]
    path = write_bundle(tmp_path, {"manifest.csv": manifest(), "users.csv": users_csv(*bad)})

    error = problems_of(path)

    assert len(error.problems) == 1001
    assert error.problems[-1].line == 1002


def test_a_bad_header_names_each_missing_and_unknown_column(tmp_path):
    header = HEADER_V1P1.replace("sourcedId", "sourcedID").replace(",password", "")
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
    assert where(error) == [(1, "sourcedID"), (1, "school"), (1, "sourcedId"), (1, "password")]
    assert "unknown column" in str(error.problems[0])
    assert "missing column" in str(error.problems[2])


def test_a_v1p2_header_in_a_v1p1_bundle_is_a_bad_header(tmp_path):
    path = write_bundle(
        tmp_path, {"manifest.csv": manifest("1.1"), "users.csv": users_csv(header=HEADER_V1P2)}
    )

    error = problems_of(path)

    assert (1, "userMasterIdentifier") in where(error)
    assert (1, "role") in where(error)


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
            role_row("u1", "student", "org2", role_type="secondary"),
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
        enrollment_end=date(2026, 6, 15),
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


def test_bad_roles_rows_name_roles_csv(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest("1.2", roles="bulk"),
            "users.csv": users_csv(user_v1p2("u1"), header=HEADER_V1P2),
            "roles.csv": HEADER_ROLES
            + "\n"
            + "\n".join(
                [
                    role_row("u1", "student", "org1", role_type="main"),
                    role_row("u1", "janitor", "org1"),
                    role_row("u1", "student", "org1", end="June"),
                    role_row("", "student", "org1"),
                    role_row("u1", "student", ""),
                ]
            )
            + "\n",
        },
    )

    error = problems_of(path)

    assert error.path.endswith("roles.csv")
    assert where(error) == [
        (2, "roleType"),
        (3, "role"),
        (4, "endDate"),
        (5, "userSourcedId"),
        (6, "orgSourcedId"),
    ]


def test_a_v1p2_user_without_a_role_is_a_bad_row_of_users_csv(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest("1.2", roles="bulk"),
            "users.csv": users_csv(user_v1p2("u1"), user_v1p2("u2"), header=HEADER_V1P2),
            "roles.csv": HEADER_ROLES + "\n" + role_row("u1", "student", "org1") + "\n",
        },
    )

    error = problems_of(path)

    assert error.path.endswith("users.csv")
    assert where(error) == [(3, "sourcedId")]
    assert "'u2' has no role in roles.csv" in str(error)


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


def test_a_v1p2_user_with_only_extension_roles_cannot_be_classified(tmp_path):
    path = write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest("1.2", roles="bulk"),
            "users.csv": users_csv(user_v1p2("u1"), header=HEADER_V1P2),
            "roles.csv": HEADER_ROLES + "\n" + role_row("u1", "ext:mentor", "org1") + "\n",
        },
    )

    assert where(problems_of(path)) == [(2, "sourcedId")]


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
