"""The local roster's CSV file: what it accepts, and that one bad row means nothing is imported."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from licensing.orchestration.plugin_host import RosterRecordChecks, plugin_host
from licensing.settings import Settings
from licensing.storage.roster import UsageCounts, current_usage
from licensing.storage.roster_changes import DEFAULT_GUARD, apply_roster, confirm_held_run
from plugins.builtin.local_roster import COLUMNS, LocalRosterSource, read_roster_csv
from plugins.records import DistrictRef, RosterFileError, RowProblem, SourceError, StudentRecord
from tests.utils.districts import create_district, students

PLUGINS_DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
HEADER = "id,role,status,enabled,school,graduation_year\n"


def write_csv(tmp_path: Path, text: str, name: str = "roster.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[RowProblem]:
    with pytest.raises(RosterFileError) as raised:
        read_roster_csv(path, checks=RosterRecordChecks())
    return raised.value.problems


def where(problems: list[RowProblem]) -> list[tuple[int, str | None]]:
    return [(problem.line, problem.column) for problem in problems]


@pytest.fixture
def district(service):
    """A district whose local roster has 10 active students."""
    return create_district(service, slug="riverside", roster=students(10))


def usage(service, district_id: int) -> UsageCounts:
    with service.database.read() as session:
        return current_usage(session, district_id=district_id)


def import_file(service, district_id: int, path: Path, *, replace: bool = False) -> UsageCounts:
    """Import a file the way `licensing roster import` does: read it, then apply it."""
    records = read_roster_csv(path, checks=RosterRecordChecks())
    with service.database.write() as session:
        apply_roster(
            session,
            district_id=district_id,
            source="local",
            records=records,
            replace=replace,
            now=service.clock(),
        )
    return usage(service, district_id)


def test_a_good_file_gives_one_record_per_person(tmp_path):
    path = write_csv(
        tmp_path,
        ",".join(COLUMNS) + "\n"
        "S1,student,active,true,Ava,Garcia,ava.garcia,7,Oak Hill,2031,2026-08-15T09:30:00Z,ST-1\n"
        "T1,teacher,active,false,Noah,Patel,noah.patel,,Riverside High,,2026-08-15,\n"
        "S2,,,,,,,,,,,\n",
    )

    records = read_roster_csv(path, checks=RosterRecordChecks())

    assert records == [
        StudentRecord(
            source_id="S1",
            role="student",
            status="active",
            enabled=True,
            person_key="ST-1",
            given_name="Ava",
            family_name="Garcia",
            username="ava.garcia",
            grade="7",
            schools=("Oak Hill",),
            graduation_year=2031,
            last_modified=datetime(2026, 8, 15, 9, 30, tzinfo=UTC),
        ),
        StudentRecord(
            source_id="T1",
            role="teacher",
            status="active",
            enabled=False,
            given_name="Noah",
            family_name="Patel",
            username="noah.patel",
            schools=("Riverside High",),
            # A date without a time or zone is midnight UTC.
            last_modified=datetime(2026, 8, 15, tzinfo=UTC),
        ),
        # Empty cells take the defaults: an enabled, active student.
        StudentRecord(source_id="S2"),
    ]


def test_only_the_id_column_is_required_and_columns_may_come_in_any_order(tmp_path):
    path = write_csv(tmp_path, "status,id\ngraduated,S1\n,S2\n")

    assert read_roster_csv(path, checks=RosterRecordChecks()) == [
        StudentRecord(source_id="S1", status="graduated"),
        StudentRecord(source_id="S2"),
    ]


def test_a_byte_order_mark_is_allowed(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffid,role\nS1,student\n".encode())

    assert read_roster_csv(path, checks=RosterRecordChecks()) == [StudentRecord(source_id="S1")]


def test_a_student_on_two_rows_with_two_schools_is_one_record_with_both(tmp_path):
    path = write_csv(
        tmp_path,
        HEADER + "S1,student,active,true,Oak Hill,2031\n"
        "S2,student,active,true,Oak Hill,2031\n"
        "S1,student,active,true,Riverside High,2031\n",
    )

    records = read_roster_csv(path, checks=RosterRecordChecks())

    assert [record.source_id for record in records] == ["S1", "S2"]
    assert records[0].schools == ("Oak Hill", "Riverside High")


def test_a_student_in_two_schools_counts_once(service, district, tmp_path):
    path = write_csv(
        tmp_path,
        HEADER + "N1,student,active,true,Oak Hill,2031\n"
        "N1,student,active,true,Riverside High,2031\n",
    )

    after = import_file(service, district, path)

    assert after.active_students == 11
    assert after.duplicates_collapsed == 0


def test_two_rows_of_one_id_must_agree_apart_from_the_school(tmp_path):
    path = write_csv(
        tmp_path,
        HEADER + "S1,student,active,true,Oak Hill,2031\n"
        "S1,student,graduated,true,Riverside High,2031\n",
    )

    problems = problems_of(path)

    assert where(problems) == [(3, "id")]
    assert "line 2" in problems[0].message


@pytest.mark.parametrize("word", ["TRUE", "True", "true", "tRuE", "FALSE", "False", "false"])
def test_enabled_accepts_true_and_false_in_any_letter_case(tmp_path, word):
    path = write_csv(tmp_path, f"id,enabled\nS1,{word}\n")

    [record] = read_roster_csv(path, checks=RosterRecordChecks())

    assert record.enabled is (word.lower() == "true")


@pytest.mark.parametrize(
    "row, column, message",
    [
        (",student,active,true,Oak Hill,2031", "id", "the id is empty"),
        ("S9,student,active,yes,Oak Hill,2031", "enabled", "'yes' is not true or false"),
        ("S9,student,active,true,Oak Hill,20x5", "graduation_year", "'20x5' is not a four-digit"),
        ("S9,student,active,true,Oak Hill,31", "graduation_year", "'31' is not a four-digit"),
        ("S9,wizard,active,true,Oak Hill,2031", "role", "'wizard'"),
        ("S9,student,sleeping,true,Oak Hill,2031", "status", "'sleeping'"),
    ],
)
def test_a_bad_row_is_reported_with_its_line_and_column(tmp_path, row, column, message):
    path = write_csv(tmp_path, HEADER + "S1,student,active,true,Oak Hill,2031\n" + row + "\n")

    with pytest.raises(RosterFileError) as raised:
        read_roster_csv(path, checks=RosterRecordChecks())

    assert where(raised.value.problems) == [(3, column)]
    assert message in raised.value.problems[0].message
    assert f"line 3, column {column}: " in str(raised.value)
    assert "nothing imported" in str(raised.value)


def test_a_bad_last_modified_is_reported(tmp_path):
    path = write_csv(tmp_path, "id,last_modified\nS1,last tuesday\n")

    assert where(problems_of(path)) == [(2, "last_modified")]


def test_every_bad_row_is_reported_at_once(tmp_path):
    path = write_csv(
        tmp_path,
        HEADER + "S1,student,active,yes,Oak Hill,2031\n"
        "S2,student,active,true,Oak Hill,2031\n"
        ",student,active,true,Oak Hill,2031\n"
        "S4,student,active,true,Oak Hill,20x5\n"
        "S5,wizard,sleeping,true,Oak Hill,2031\n",
    )

    assert where(problems_of(path)) == [
        (2, "enabled"),
        (4, "id"),
        (5, "graduation_year"),
        (6, "role"),
        (6, "status"),
    ]


def test_lines_are_counted_in_the_file_even_with_quoted_line_breaks(tmp_path):
    path = write_csv(tmp_path, 'id,school,enabled\nS1,"Oak\nHill",true\nS2,Oak Hill,yes\n')

    assert where(problems_of(path)) == [(4, "enabled")]


def test_an_unknown_column_in_the_header_is_reported_on_line_1(tmp_path):
    path = write_csv(tmp_path, "id,graduation_yr,colour\nS1,2031,red\n")

    problems = problems_of(path)

    assert where(problems) == [(1, "graduation_yr"), (1, "colour")]
    assert "unknown column" in problems[0].message


def test_a_header_without_id_is_reported(tmp_path):
    path = write_csv(tmp_path, "name,status\nAva,active\n")

    assert where(problems_of(path)) == [(1, "id")]


def test_a_row_with_more_fields_than_the_header_is_reported(tmp_path):
    path = write_csv(tmp_path, "id,status\nS1,active,surprise\n")

    assert [problem.line for problem in problems_of(path)] == [2]


def test_a_file_that_is_not_utf8_is_reported(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,family_name\nS1,Muñoz\n".encode("latin-1"))

    assert "not UTF-8" in str(problems_of(path)[0])


def test_a_missing_file_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="No such file"):
        read_roster_csv(tmp_path / "missing.csv", checks=RosterRecordChecks())


@pytest.mark.parametrize(
    "bad_row",
    [
        ",student,active,true,Oak Hill,2031",
        "N3,student,active,yes,Oak Hill,2031",
        "N3,student,active,true,Oak Hill,20x5",
        "N3,wizard,active,true,Oak Hill,2031",
        "N3,student,sleeping,true,Oak Hill,2031",
    ],
)
@pytest.mark.parametrize("replace", [False, True])
def test_one_bad_row_means_nothing_is_imported(service, district, tmp_path, bad_row, replace):
    before = usage(service, district)
    path = write_csv(
        tmp_path,
        HEADER + "N1,student,active,true,Oak Hill,2031\n"
        "N2,student,active,true,Oak Hill,2031\n" + bad_row + "\n",
    )

    with pytest.raises(RosterFileError):
        import_file(service, district, path, replace=replace)

    assert usage(service, district) == before
    assert before.active_students == 10


def test_an_unknown_column_means_nothing_is_imported(service, district, tmp_path):
    before = usage(service, district)
    path = write_csv(tmp_path, "id,colour\nN1,red\n")

    with pytest.raises(RosterFileError):
        import_file(service, district, path, replace=True)

    assert usage(service, district) == before


def test_import_adds_and_updates_and_replace_removes_the_rest(service, district, tmp_path):
    # S000001 graduates, N1 joins; without --replace everyone else stays.
    path = write_csv(
        tmp_path,
        HEADER + "S000001,student,graduated,true,Oak Hill,2025\n"
        "N1,student,active,true,Oak Hill,2031\n",
    )

    assert import_file(service, district, path).active_students == 10
    # Replacing would stop counting 9 of 10: held until an administrator confirms it.
    assert import_file(service, district, path, replace=True).active_students == 10
    with service.database.write() as session:
        confirmed = confirm_held_run(
            session,
            district_id=district,
            source="local",
            run_id=None,
            actor="administrator",
            now=service.clock(),
            guard=DEFAULT_GUARD,
        )
    after = usage(service, district)

    assert confirmed.status == "applied"
    assert after.active_students == 1
    assert after.inactive_students == 1


def test_the_local_source_reads_the_file_named_in_its_options(tmp_path):
    path = write_csv(tmp_path, "id\nS1\n")
    district = DistrictRef(slug="riverside", official_name="Riverside", time_zone="UTC")

    source = LocalRosterSource(plugin_host(Settings()))

    assert source.fetch_students(district=district, options={"path": str(path)}) == [
        StudentRecord(source_id="S1")
    ]
    with pytest.raises(SourceError, match="give its path"):
        source.fetch_students(district=district, options={})


def test_the_documented_example_file_uses_one_license(service, tmp_path):
    doc = PLUGINS_DOC.read_text(encoding="utf-8")
    example = re.search(r"```text\n(id,role,status,.*?)```", doc, flags=re.DOTALL)
    assert example, "docs/plugins.md has no example local roster file"
    district_id = create_district(service, slug="riverside")

    after = import_file(service, district_id, write_csv(tmp_path, example.group(1)))

    assert after.active_students == 1
    assert after.inactive_students == 2
    assert after.staff == 1
