"""On PostgreSQL, the heavy reads of a large district read indexes, never a whole table.

SPEC section 8 asks countReview, the first page of an activeStudents search and auditLog to stay
fast at 1,000,000 students with no sequential scan of the roster; bench/heavy_reads.py measures
them at that size. Here each query runs through the API against a district large enough for the
planner to prefer an index over reading the table (beside a second district of the same size,
after ANALYZE), every statement it sends is EXPLAINed, and a Seq Scan of the roster or the audit
log fails the test. PostgreSQL only: SQLite's plans are another matter (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from db.models import RosterRecord
from licensing.storage.districts import create_district
from licensing.storage.roster import refresh_usage
from licensing.storage.student_report import encode_cursor
from licensing.storage.tokens import Permission
from tests.utils.databases import skip_unless_postgres
from tests.utils.districts import token_for
from tests.utils.graphql import graphql_data

pytestmark = pytest.mark.anyio

STUDENTS = 20_000
AUDIT_EVENTS = 20_000
WATCHED_TABLES = ("roster_record", "audit_event")
FAMILY_NAMES = [f"{start}{end}" for start in ("Al", "Bor", "Cal", "Dun") for end in range(250)]
ROSTER_COLUMNS = (
    "district_id, source, source_id, person_key, role, lifecycle, enabled, raw_status, "
    "given_name, family_name, username, grade, school, schools, graduation_year, last_modified"
)
AUDIT_COLUMNS = "district_id, occurred_at, actor, action, old_value, new_value, outcome"
ACTIONS = (
    ["license_refresh"] * 8 + ["roster_sync"] * 6 + ["force_license_update"] * 3 + ["set_threshold"]
)


def roster_rows(district_id: int, prefix: str) -> Iterator[tuple[Any, ...]]:
    modified = datetime(2026, 8, 1, tzinfo=UTC)
    for number in range(STUDENTS):
        family = FAMILY_NAMES[number % len(FAMILY_NAMES)]
        yield (
            district_id,
            "sis",
            f"{prefix}{number:06d}",
            f"{prefix}{number:06d}",
            "student",
            "active",
            True,
            "active",
            "Ava",
            family,
            f"ava.{family.lower()}{number}",
            f"{number % 12 + 1:02d}",
            f"School {number % 40}",
            f"School {number % 40}",
            2027 + number % 12,
            modified - timedelta(minutes=number),
        )


def audit_rows(district_id: int, now: datetime) -> Iterator[tuple[Any, ...]]:
    for number in range(AUDIT_EVENTS):
        yield (
            district_id,
            now - timedelta(hours=AUDIT_EVENTS - number),
            "token:admin",
            ACTIONS[number % len(ACTIONS)],
            "50",
            "60",
            "changed",
        )


def copy_rows(service: Any, table: str, columns: str, rows: Iterator[tuple[Any, ...]]) -> None:
    connection = service.database.engine.raw_connection()
    try:
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        connection.commit()
    finally:
        connection.close()


def large_district(service: Any, slug: str, prefix: str) -> int:
    now = service.clock()
    with service.database.write() as session:
        district_id = create_district(
            session, slug=slug, official_name=slug.title(), time_zone="UTC", now=now
        ).id
    copy_rows(service, "roster_record", ROSTER_COLUMNS, roster_rows(district_id, prefix))
    copy_rows(service, "audit_event", AUDIT_COLUMNS, audit_rows(district_id, now))
    with service.database.write() as session:
        refresh_usage(session, district_id=district_id, now=now)
    return district_id


@pytest.fixture
def district(service: Any) -> tuple[int, str]:
    """A district of 20,000 students and 20,000 audit events, beside another of the same size,
    the statistics up to date; its id and a MANAGE_SETTINGS token."""
    skip_unless_postgres()
    large_district(service, "neighbour", "N")
    district_id = large_district(service, "riverside", "R")
    with service.database.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE roster_record")
        connection.exec_driver_sql("ANALYZE audit_event")
        connection.commit()
    return district_id, token_for(service, district_id, Permission.MANAGE_SETTINGS)


@contextmanager
def statements_sent(service: Any) -> Iterator[list[tuple[str, Any]]]:
    sent: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(service.database.engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(service.database.engine, "before_cursor_execute", seen)


def full_scans(service: Any, statements: list[tuple[str, Any]]) -> list[str]:
    """Each Seq Scan of the roster or the audit log in the plans of ``statements``."""
    return [
        f"{node['Relation Name']} in: {statement[:200]}"
        for statement, node in plan_nodes_of(service, statements)
        if node["Node Type"] == "Seq Scan" and node["Relation Name"] in WATCHED_TABLES
    ]


def indexes_read(service: Any, statements: list[tuple[str, Any]]) -> set[str]:
    return {
        node["Index Name"]
        for _statement, node in plan_nodes_of(service, statements)
        if "Index Name" in node
    }


def plan_nodes_of(
    service: Any, statements: list[tuple[str, Any]]
) -> list[tuple[str, dict[str, Any]]]:
    """The nodes of the plans of the statements that read the roster or the audit log."""
    found = []
    connection = service.database.engine.raw_connection()
    try:
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            if not any(table in statement for table in WATCHED_TABLES):
                continue
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}", parameters or None)
                [(plan,)] = cursor.fetchall()
            found += [(statement, node) for node in plan_nodes(plan[0]["Plan"])]
        connection.rollback()
    finally:
        connection.close()
    return found


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


async def reads_no_whole_table(
    client: Any, service: Any, token: str, query: str, *, through: str | None = None
) -> dict:
    """The query's answer, having checked that no statement it sent reads the roster or the
    audit log in full (and, when ``through`` names one, that one reads that index)."""
    with statements_sent(service) as statements:
        data = await graphql_data(client, token, query)
    assert statements, "the query read nothing from the database"
    assert full_scans(service, statements) == []
    if through is not None:
        assert through in indexes_read(service, statements)
    return data


STUDENT_PAGE = "pageInfo { hasNextPage endCursor } nodes { sourceId familyName }"
AUDIT_PAGE = "pageInfo { hasNextPage endCursor } nodes { action occurredAt }"


async def test_count_review_once_counted_reads_no_whole_table(client, service, district, clock):
    _district_id, token = district
    first = await graphql_data(client, token, "{ countReview { reason students } }")
    # Later the same day: the records that became "not modified recently" since are looked up.
    clock.advance(hours=1)

    # A new document, so that the worker's kept answer does not serve it.
    again = await reads_no_whole_table(
        client, service, token, "{ countReview { reason students } } # again"
    )

    assert again == first


async def test_the_first_page_of_active_students_reads_an_index(client, service, district):
    data = await reads_no_whole_table(
        client,
        service,
        district[1],
        f"{{ activeStudents(first: 50) {{ totalCount {STUDENT_PAGE} }} }}",
    )

    assert data["activeStudents"]["totalCount"] == STUDENTS
    assert data["activeStudents"]["nodes"][0]["sourceId"] == "R000000"


async def test_a_deep_page_of_active_students_reads_an_index(client, service, district):
    district_id, token = district
    with service.database.read() as session:
        [(record_id,)] = session.execute(
            select_record_id(district_id, f"R{STUDENTS - 100:06d}")
        ).all()

    data = await reads_no_whole_table(
        client,
        service,
        token,
        f'{{ activeStudents(first: 50, after: "{encode_cursor(record_id)}") {{ {STUDENT_PAGE} }} }}',
    )

    assert data["activeStudents"]["nodes"][0]["sourceId"] == f"R{STUDENTS - 99:06d}"


def select_record_id(district_id: int, source_id: str) -> Any:
    return select(RosterRecord.id).where(
        RosterRecord.district_id == district_id, RosterRecord.source_id == source_id
    )


async def test_a_selective_search_of_active_students_reads_the_trigram_index(
    client, service, district
):
    data = await reads_no_whole_table(
        client,
        service,
        district[1],
        '{ activeStudents(first: 50, filter: {search: "Cal177"}) '
        "{ totalCount nodes { givenName familyName username } } }",
        through="ix_roster_record_search",
    )

    found = data["activeStudents"]["nodes"]
    assert 0 < len(found) == data["activeStudents"]["totalCount"] < 50
    assert all("cal177" in f"{node['familyName']} {node['username']}".lower() for node in found)


async def test_an_unselective_search_of_active_students_reads_an_index(client, service, district):
    data = await reads_no_whole_table(
        client,
        service,
        district[1],
        '{ activeStudents(first: 50, filter: {search: "ava"}) { nodes { givenName } } }',
    )

    assert [node["givenName"] for node in data["activeStudents"]["nodes"]] == ["Ava"] * 50


@pytest.mark.parametrize(
    "arguments",
    [
        "first: 50",
        "first: 50, actions: [SET_THRESHOLD]",
        "first: 50, actions: [ROSTER_SYNC, FORCE_LICENSE_UPDATE]",
        'first: 50, since: "2026-10-01", until: "2026-10-31"',
    ],
    ids=["first-page", "one-action", "two-actions", "days"],
)
async def test_the_audit_log_reads_an_index(client, service, district, arguments):
    data = await reads_no_whole_table(
        client, service, district[1], f"{{ auditLog({arguments}) {{ {AUDIT_PAGE} }} }}"
    )

    assert len(data["auditLog"]["nodes"]) == 50
