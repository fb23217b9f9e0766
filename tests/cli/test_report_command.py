"""`licensing report active-students`: the report on the command line, as CSV or JSON Lines."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx
import pytest

from app import report_export as reports
from app.factory import create_app
from app.report_export import REPORT_PATH
from app.runtime import build_service
from licensing.orchestration.service import LicensingService
from licensing.settings import load_settings
from licensing.storage import student_report as report
from licensing.storage.roster_changes import apply_roster
from licensing.storage.student_report import EXPORT_COLUMNS
from licensing.storage.tokens import Permission
from plugins.records import StudentRecord
from tests.utils.cli import run
from tests.utils.districts import create_district, students, token_for

COUNTED = ["A1", "B2", "C3", "sis-9"]


def local_roster() -> list[StudentRecord]:
    """Three students who count, one staff member, and students who do not count."""
    return [
        StudentRecord(
            source_id="A1",
            given_name="Ava",
            family_name="Lopez",
            username="ava.lopez",
            grade="9",
            schools=("North High", "Arts Academy"),
            graduation_year=2030,
            last_modified=datetime(2025, 1, 10, tzinfo=UTC),
        ),
        StudentRecord(
            source_id="B2",
            given_name="=cmd|' /C calc'!A0",
            family_name="Okafor",
            username="@bokafor",
            grade="12",
            schools=("South High",),
            graduation_year=2027,
            last_modified=datetime(2026, 9, 1, tzinfo=UTC),
        ),
        StudentRecord(
            source_id="C3",
            given_name="Chloe",
            family_name="Nguyen",
            username="CNGUYEN",
            grade="9",
            schools=("South High",),
            graduation_year=2030,
        ),
        StudentRecord(source_id="T1", role="teacher", given_name="Tess", family_name="Lopez"),
        StudentRecord(source_id="G1", status="graduated", given_name="Gus", family_name="Lopez"),
        StudentRecord(source_id="D1", enabled=False, given_name="Dina", family_name="Lopez"),
    ]


@pytest.fixture
def service() -> Iterator[LicensingService]:
    built = build_service(load_settings(), upgrade_schema=True)
    yield built
    built.database.dispose()


@pytest.fixture
def riverside(service: LicensingService) -> int:
    district_id = create_district(service, slug="riverside", roster=local_roster())
    with service.database.write() as session:
        apply_roster(
            session,
            district_id=district_id,
            source="sis",
            records=[
                StudentRecord(
                    source_id="sis-9",
                    given_name="Sam",
                    family_name="Ito",
                    username="sito",
                    grade="10",
                    schools=("North High",),
                    graduation_year=2029,
                )
            ],
            replace=True,
            now=service.clock(),
        )
    return district_id


def read_csv(text: str) -> list[dict[str, str]]:
    lines = list(csv.reader(io.StringIO(text, newline="")))
    assert lines[0] == list(EXPORT_COLUMNS)
    return [dict(zip(EXPORT_COLUMNS, line, strict=True)) for line in lines[1:]]


def export(*arguments: str) -> str:
    """The command's standard output, exactly as written (CRLF line ends kept)."""
    result = run("report", "active-students", "--district", "riverside", *arguments)
    return result.stdout_bytes.decode("utf-8")


def ids(rows: list[dict[str, object]]) -> list[object]:
    return [row["source_id"] for row in rows]


def test_csv_on_standard_output_is_exactly_the_active_enabled_students(riverside):
    result = run("report", "active-students", "--district", "riverside")

    rows = read_csv(result.stdout_bytes.decode("utf-8"))
    assert ids(rows) == COUNTED
    assert rows[0]["schools"] == "North High;Arts Academy"
    assert (rows[0]["role"], rows[0]["status"], rows[0]["enabled"]) == ("student", "active", "true")
    assert rows[3]["source"] == "sis"
    assert result.stderr == "Exported 4 active student(s).\n"


def download(service: LicensingService, token: str, params: dict[str, str]) -> bytes:
    """The dashboard's CSV download with these query parameters."""

    async def fetch() -> bytes:
        transport = httpx.ASGITransport(app=create_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.get(
                REPORT_PATH, params=params, headers={"Authorization": f"Bearer {token}"}
            )
        assert response.status_code == 200, response.text
        return response.content

    return anyio.run(fetch)


def test_the_csv_is_byte_for_byte_the_dashboards_download(riverside, service, tmp_path):
    secret = token_for(service, riverside, Permission.MANAGE_SETTINGS)

    for arguments, params in [
        ([], {}),
        (["--grade", "9", "--search", "a"], {"grade": "9", "search": "a"}),
    ]:
        downloaded = download(service, secret, params)
        assert export(*arguments).encode("utf-8") == downloaded
        output = tmp_path / "report.csv"
        run("report", "active-students", "-d", "riverside", "-o", str(output), *arguments)
        assert output.read_bytes() == downloaded


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--source", "local"], ["A1", "B2", "C3"]),
        (["--source", "sis"], ["sis-9"]),
        (["--school", "North High"], ["A1", "sis-9"]),
        (["--school", "Arts Academy"], ["A1"]),
        (["--grade", "9"], ["A1", "C3"]),
        (["--graduation-year", "2030"], ["A1", "C3"]),
        (["--modified-before", "2026-01-01"], ["A1"]),
        (["--modified-before", "2026-09-02"], ["A1", "B2"]),
        (["--search", "AVA"], ["A1"]),  # given name
        (["--search", "lopez"], ["A1"]),  # family name; staff and uncounted students left out
        (["--search", "cnguyen"], ["C3"]),  # username
        (["--search", "Sis-9"], ["sis-9"]),  # id
        (["--grade", "9", "--school", "South High"], ["C3"]),
    ],
)
def test_each_filter_narrows_the_export(riverside, arguments, expected):
    assert ids(read_csv(export(*arguments))) == expected
    lines = export("--format", "json", *arguments).splitlines()
    assert [json.loads(line)["source_id"] for line in lines] == expected


def test_json_lines_parse_one_object_per_student_keyed_by_the_columns(riverside):
    result = run("report", "active-students", "-d", "riverside", "--format", "json")

    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert ids(records) == COUNTED
    assert all(list(record) == list(EXPORT_COLUMNS) for record in records)
    ava, ben, chloe, sam = records
    assert ava["schools"] == ["North High", "Arts Academy"]
    assert (ava["graduation_year"], ava["enabled"]) == (2030, True)
    assert ava["last_modified"].startswith("2025-01-10T00:00:00")
    assert (chloe["last_modified"], chloe["raw_status"]) == (None, "active")
    assert (sam["source"], sam["person_key"]) == ("sis", "sis-9")
    # JSON is not opened by spreadsheets: values are kept exactly as the source sent them.
    assert (ben["given_name"], ben["username"]) == ("=cmd|' /C calc'!A0", "@bokafor")
    assert result.stderr == "Exported 4 active student(s).\n"


def test_csv_cells_a_spreadsheet_would_run_are_quoted(riverside):
    ben = read_csv(export("--search", "okafor"))[0]

    assert ben["given_name"] == "'=cmd|' /C calc'!A0"
    assert ben["username"] == "'@bokafor"


def test_output_writes_the_file_and_says_so_on_standard_error(riverside, tmp_path):
    output = tmp_path / "students.jsonl"

    result = run(
        "report", "active-students", "-d", "riverside", "--format", "json", "--output", str(output)
    )

    assert result.stdout == ""
    assert result.stderr == f"Wrote 4 active student(s) to {output}.\n"
    assert [json.loads(line)["source_id"] for line in output.read_text().splitlines()] == COUNTED
    assert [path.name for path in tmp_path.iterdir() if "partial" in path.name] == []


def test_more_than_one_batch_streams_every_row_once_in_order(service, monkeypatch, tmp_path):
    monkeypatch.setattr(report, "EXPORT_BATCH", 3)
    batches: list[int] = []
    next_batch = reports.next_batch

    def counted_batch(rows):
        batch = next_batch(rows)
        batches.append(len(batch))
        return batch

    monkeypatch.setattr(reports, "next_batch", counted_batch)
    create_district(service, slug="riverside", roster=local_roster() + students(10, prefix="R"))
    expected = ["A1", "B2", "C3"] + [f"R{number:06d}" for number in range(1, 11)]

    assert ids(read_csv(export())) == expected
    # Read and written a batch at a time: 13 rows in batches of 3, then the empty end.
    assert batches == [3, 3, 3, 3, 1, 0]
    output = tmp_path / "out.csv"
    run("report", "active-students", "-d", "riverside", "-o", str(output))
    assert ids(read_csv(output.read_bytes().decode("utf-8"))) == expected
    json_ids = [json.loads(line)["source_id"] for line in export("--format", "json").splitlines()]
    assert json_ids == expected


def test_another_districts_students_never_appear(riverside, service):
    create_district(
        service,
        slug="lakeside",
        roster=[StudentRecord(source_id="L1", given_name="Lena", family_name="Lopez")],
    )

    assert ids(read_csv(export())) == COUNTED
    lakeside = run("report", "active-students", "-d", "lakeside").stdout_bytes.decode()
    assert ids(read_csv(lakeside)) == ["L1"]


def test_an_unknown_district_fails_plainly(service):
    result = run("report", "active-students", "--district", "nowhere", expect=1)

    assert "There is no district 'nowhere'" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("day", ["2026-02-30", "yesterday", "20260101"])
def test_a_bad_modified_before_is_a_usage_error(riverside, day):
    result = run("report", "active-students", "-d", "riverside", "--modified-before", day, expect=2)

    assert "--modified-before" in result.stderr
    assert "2026-06-30" in result.stderr
    assert result.stdout == ""


def test_an_unknown_format_is_a_usage_error(riverside):
    result = run("report", "active-students", "-d", "riverside", "--format", "xlsx", expect=2)

    assert "xlsx" in result.stderr
    assert result.stdout == ""


def test_a_file_that_cannot_be_written_fails_plainly(riverside, tmp_path):
    output = tmp_path / "missing-folder" / "report.csv"

    result = run("report", "active-students", "-d", "riverside", "-o", str(output), expect=1)

    assert f"Cannot write {output}" in result.stderr
    assert not output.exists()


def test_help_says_json_is_json_lines(monkeypatch):
    # A terminal wide enough that the help does not wrap "JSON Lines" over two lines; without a
    # terminal (CI), the help is laid out for 80 columns.
    monkeypatch.setenv("COLUMNS", "200")
    result = run("report", "active-students", "--help")
    # The help is wrapped into a box: read it as the words a person reads.
    words = " ".join(result.stdout.replace("│", " ").split())

    assert "JSON Lines" in words
    assert "--modified-before" in result.stdout


def test_report_without_a_command_shows_help(tmp_path: Path):
    result = run("report", expect=2)

    assert "active-students" in result.stdout + result.stderr
