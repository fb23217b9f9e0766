"""GET /reports/active-students.csv: the dashboard's streamed download of the active-student report."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import pytest

from app.factory import create_app
from app.report_export import REPORT_PATH
from licensing.storage import student_report as report
from licensing.storage.roster_changes import apply_roster
from licensing.storage.student_report import EXPORT_COLUMNS
from plugins.records import StudentRecord

pytestmark = pytest.mark.anyio

# The active, enabled students of the fixture district, in record-id order.
COUNTED = ["A1", "B2", "C3", "sis-9"]


def local_roster() -> list[StudentRecord]:
    """Three students who count, and one of each kind of person who does not."""
    return [
        StudentRecord(
            source_id="A1",
            person_key="P-100",
            given_name="Ava",
            family_name="Lopez",
            username="ava.lopez",
            grade="9",
            schools=("North High", "Arts Academy"),
            graduation_year=2030,
            last_modified=datetime(2025, 1, 10, 8, 30, tzinfo=UTC),
            raw_status="Active",
        ),
        StudentRecord(
            source_id="B2",
            given_name="Ben",
            family_name="Okafor",
            username="bokafor",
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
        StudentRecord(
            source_id="T1",
            role="teacher",
            given_name="Tess",
            family_name="Lopez",
            username="tlopez",
            schools=("North High",),
        ),
        StudentRecord(
            source_id="G1",
            status="graduated",
            given_name="Gus",
            family_name="Lopez",
            grade="12",
            graduation_year=2026,
        ),
        StudentRecord(source_id="D1", enabled=False, given_name="Dina", family_name="Lopez"),
        StudentRecord(source_id="Z1", status="disabled", given_name="Zed", family_name="Lopez"),
        StudentRecord(source_id="W1", status="withdrawn", given_name="Walt", family_name="Lopez"),
    ]


SIS_STUDENT = StudentRecord(
    source_id="sis-9",
    given_name="Sam",
    family_name="Ito",
    username="sito",
    grade="10",
    schools=("North High",),
    graduation_year=2029,
)


@pytest.fixture
async def district(make_district, service):
    built = await make_district("riverside", roster=local_roster())
    with service.database.write() as session:
        apply_roster(
            session,
            district_id=built.id,
            source="sis",
            records=[SIS_STUDENT],
            replace=True,
            now=service.clock(),
        )
    return built


async def download(client: httpx.AsyncClient, token: str | None, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.get(REPORT_PATH, params=params, headers=headers)


def read_csv(response: httpx.Response) -> list[dict[str, str]]:
    """The download's rows as dicts, after checking it is a 200 with the header row."""
    assert response.status_code == 200, response.text
    lines = list(csv.reader(io.StringIO(response.text, newline="")))
    assert lines[0] == list(EXPORT_COLUMNS)
    assert all(len(line) == len(EXPORT_COLUMNS) for line in lines[1:])
    return [dict(zip(EXPORT_COLUMNS, line, strict=True)) for line in lines[1:]]


def ids(rows: list[dict[str, str]]) -> list[str]:
    return [row["source_id"] for row in rows]


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == code
    return error["message"]


async def test_the_download_is_exactly_the_active_enabled_students(client, district):
    response = await download(client, district.manager_token)

    rows = read_csv(response)
    assert ids(rows) == COUNTED
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="active-students-riverside-2026-11-28.csv"'
    )
    assert response.headers["cache-control"] == "no-store"
    assert response.text.startswith(",".join(EXPORT_COLUMNS) + "\r\n")


async def test_every_column_says_why_the_row_counts_and_where_it_came_from(client, district):
    rows = read_csv(await download(client, district.manager_token))

    ava, ben, chloe, sam = rows
    assert ava == {
        "source": "local",
        "source_id": "A1",
        "person_key": "P-100",
        "given_name": "Ava",
        "family_name": "Lopez",
        "username": "ava.lopez",
        "grade": "9",
        "school": "North High",
        "schools": "North High;Arts Academy",
        "graduation_year": "2030",
        "last_modified": ava["last_modified"],
        "role": "student",
        "status": "active",
        "raw_status": "Active",
        "enabled": "true",
    }
    assert ava["last_modified"].startswith("2025-01-10T08:30:00")
    assert (ben["person_key"], ben["raw_status"]) == ("B2", "active")
    assert (chloe["last_modified"], chloe["username"]) == ("", "CNGUYEN")
    assert (sam["source"], sam["source_id"], sam["school"]) == ("sis", "sis-9", "North High")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"source": "local"}, ["A1", "B2", "C3"]),
        ({"source": "sis"}, ["sis-9"]),
        ({"source": "clever"}, []),
        ({"school": "North High"}, ["A1", "sis-9"]),
        ({"school": "Arts Academy"}, ["A1"]),  # a school that is not the primary one
        ({"school": "South High"}, ["B2", "C3"]),
        ({"grade": "9"}, ["A1", "C3"]),
        ({"grade": "12"}, ["B2"]),  # the graduated twelfth-grader does not count
        ({"graduationYear": "2030"}, ["A1", "C3"]),
        ({"graduationYear": "2026"}, []),
        ({"modifiedBefore": "2026-01-01"}, ["A1"]),
        ({"modifiedBefore": "2026-09-02"}, ["A1", "B2"]),
        ({"search": "ava"}, ["A1"]),  # given name
        ({"search": "LOPEZ"}, ["A1"]),  # family name: staff and uncounted Lopezes left out
        ({"search": "okaf"}, ["B2"]),
        ({"search": "cnguyen"}, ["C3"]),  # username, stored upper case
        ({"search": "SIS-9"}, ["sis-9"]),  # id
        ({"search": "ben okafor"}, ["B2"]),  # whole name
        ({"search": "nobody"}, []),
        ({"grade": "9", "school": "South High"}, ["C3"]),  # filters combine
        ({"school": "", "search": ""}, COUNTED),  # empty values filter nothing
    ],
)
async def test_each_filter_narrows_the_download(client, district, params, expected):
    rows = read_csv(await download(client, district.manager_token, **params))

    assert ids(rows) == expected


async def test_cells_a_spreadsheet_would_run_are_quoted(client, make_district):
    district = await make_district(
        "riverside",
        roster=[
            StudentRecord(
                source_id="-F1",
                given_name='=HYPERLINK("http://evil.example","open")',
                family_name="+SUM(A1:A9)",
                username="@cmd",
                grade="\t9",
                schools=("\rSchool", "Ann-Marie Academy"),
            ),
            StudentRecord(source_id="F2", given_name="Ann-Marie", family_name="O'Neil"),
        ],
    )

    response = await download(client, district.manager_token)

    first, second = read_csv(response)
    assert first["source_id"] == "'-F1"
    assert first["person_key"] == "'-F1"
    assert first["given_name"] == '\'=HYPERLINK("http://evil.example","open")'
    assert first["family_name"] == "'+SUM(A1:A9)"
    assert first["username"] == "'@cmd"
    assert first["grade"] == "'\t9"
    assert first["school"] == "'\rSchool"
    assert first["schools"] == "'\rSchool;Ann-Marie Academy"
    assert (second["given_name"], second["family_name"]) == ("Ann-Marie", "O'Neil")
    assert "\n=" not in response.text and ",=" not in response.text


async def test_no_token_is_401_with_a_challenge(client, district):
    response = await download(client, None)

    message = assert_error(response, 401, "UNAUTHENTICATED")
    assert "Authorization: Bearer" in message
    assert response.headers["www-authenticate"].lower().startswith("bearer")


@pytest.mark.parametrize(
    "header", ["Bearer m1t1_not-a-real-token", "Basic dXNlcjpwdw==", "Bearer "]
)
async def test_a_bad_token_is_401(client, district, header):
    response = await client.get(REPORT_PATH, headers={"Authorization": header})

    assert_error(response, 401, "UNAUTHENTICATED")


async def test_a_view_license_token_is_403_because_the_report_shows_names(client, district):
    response = await download(client, district.viewer_token)

    message = assert_error(response, 403, "FORBIDDEN")
    assert "MANAGE_SETTINGS" in message
    assert "Ava" not in response.text


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"graduationYear": "next"}, "graduationYear"),
        ({"graduationYear": "2030.5"}, "graduationYear"),
        ({"modifiedBefore": "2026-02-30"}, "modifiedBefore"),
        ({"modifiedBefore": "20260101"}, "modifiedBefore"),
        ({"modifiedBefore": "yesterday"}, "modifiedBefore"),
        ({"search": "x" * 201}, "search"),
        ({"district": "lakeside"}, "district"),  # unknown: never another district
        ({"graduation_year": "2030"}, "graduation_year"),  # a typo is not silently ignored
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter(client, district, params, parameter):
    response = await download(client, district.manager_token, **params)

    message = assert_error(response, 400, "BAD_REQUEST")
    assert f"'{parameter}'" in message


async def test_a_repeated_parameter_is_400(client, district):
    response = await client.get(
        f"{REPORT_PATH}?grade=9&grade=12",
        headers={"Authorization": f"Bearer {district.manager_token}"},
    )

    assert "'grade'" in assert_error(response, 400, "BAD_REQUEST")


async def test_another_districts_students_never_appear(client, make_district, district):
    lakeside = await make_district(
        "lakeside",
        roster=[StudentRecord(source_id="A1", given_name="Lena", family_name="Lopez")],
        active=3,
    )

    riverside_rows = read_csv(await download(client, district.manager_token))
    lakeside_response = await download(client, lakeside.manager_token, search="lopez")
    lakeside_rows = read_csv(await download(client, lakeside.manager_token))

    assert ids(riverside_rows) == COUNTED
    assert "Lena" not in {row["given_name"] for row in riverside_rows}
    assert ids(read_csv(lakeside_response)) == ["A1"]
    assert read_csv(lakeside_response)[0]["given_name"] == "Lena"
    assert ids(lakeside_rows) == ["A1", "lakeside-000001", "lakeside-000002", "lakeside-000003"]
    assert 'filename="active-students-lakeside-' in lakeside_response.headers["content-disposition"]


async def test_the_file_name_carries_the_date_in_the_districts_time_zone(client, make_district):
    # 2026-11-28 15:00 UTC is already the 29th in Auckland.
    district = await make_district("kiwi", active=1, time_zone="Pacific/Auckland")

    response = await download(client, district.manager_token)

    assert response.headers["content-disposition"] == (
        'attachment; filename="active-students-kiwi-2026-11-29.csv"'
    )


async def raw_get(app: Any, path: str, token: str) -> tuple[dict[str, Any], list[bytes]]:
    """Call the ASGI app directly: the response start and each body message as it was sent."""
    start: dict[str, Any] = {}
    bodies: list[bytes] = []
    finished = anyio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            bodies.append(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    return start, bodies


async def test_it_streams_batch_by_batch_and_every_row_arrives_once_in_order(
    service, make_district, monkeypatch
):
    monkeypatch.setattr(report, "EXPORT_BATCH", 3)
    district = await make_district("riverside", active=10, roster=local_roster())
    expected = ["A1", "B2", "C3"] + [f"riverside-{number:06d}" for number in range(1, 11)]

    start, bodies = await raw_get(create_app(service), REPORT_PATH, district.manager_token)

    assert start["status"] == 200
    chunks = [body.decode("utf-8") for body in bodies if body]
    # Sent as it is read: the header, then one message per batch of 3 rows (13 rows, 5 batches).
    assert [chunk.count("\r\n") for chunk in chunks] == [1, 3, 3, 3, 3, 1]
    lines = list(csv.reader(io.StringIO("".join(chunks), newline="")))
    assert lines[0] == list(EXPORT_COLUMNS)
    assert [line[1] for line in lines[1:]] == expected


async def test_an_empty_report_is_the_header_alone(client, make_district):
    district = await make_district("empty")

    response = await download(client, district.manager_token)

    assert response.status_code == 200
    assert response.text == ",".join(EXPORT_COLUMNS) + "\r\n"


async def test_the_licensing_tab_session_cookie_can_download_the_report(client, district):
    signed_in = await client.post(
        "/session",
        json={"token": district.manager_token},
        headers={"X-Requested-With": "licensing-tab"},
    )
    assert signed_in.status_code == 200, signed_in.text

    response = await client.get(REPORT_PATH)  # no Authorization header: the cookie signs in

    assert response.status_code == 200, response.text
    assert ids(read_csv(response)) == COUNTED
