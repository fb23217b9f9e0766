"""The active-student report: who fills the license, why each one counts, and where they came from.

Rows are the roster records that count (role student, lifecycle active, enabled), in a stable
order (by record id), so a report can be paged with a cursor or streamed to a file without ever
holding the whole roster in memory.
"""

from __future__ import annotations

from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, false, func, or_, select
from sqlmodel import Session

from db.models import RosterRecord, table_of
from db.queries import NaiveUtc
from db.rules_sql import counts_against_license
from db.search_sql import SEPARATOR, search_text, whole_name
from db.session import Database
from licensing.domain import rules
from licensing.storage import cursors
from licensing.storage.paging import KeysetList, Page, PageRequest, keyset_page
from licensing.storage.roster import counted_records

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
EXPORT_BATCH = 5_000

roster = table_of(RosterRecord)


@dataclass(frozen=True)
class ActiveStudentFilter:
    """Narrows the report; every field is optional and they combine with AND."""

    source: str | None = None
    school: str | None = None
    grade: str | None = None
    graduation_year: int | None = None
    modified_before: date | None = None
    search: str | None = None


@dataclass(frozen=True)
class ActiveStudentRow:
    id: int
    source: str
    source_id: str
    person_key: str
    given_name: str | None
    family_name: str | None
    username: str | None
    grade: str | None
    school: str | None
    schools: tuple[str, ...]
    graduation_year: int | None
    last_modified: datetime | None
    role: rules.Role
    status: rules.Lifecycle
    raw_status: str | None
    enabled: bool

    @property
    def why_counted(self) -> str:
        return f"active, enabled student in {self.source}"


EXPORT_COLUMNS = (
    "source",
    "source_id",
    "person_key",
    "given_name",
    "family_name",
    "username",
    "grade",
    "school",
    "schools",
    "graduation_year",
    "last_modified",
    "role",
    "status",
    "raw_status",
    "enabled",
)


def export_values(row: ActiveStudentRow) -> list[Any]:
    """The row's values in EXPORT_COLUMNS order, as text a spreadsheet reads."""
    return [
        row.source,
        row.source_id,
        row.person_key,
        row.given_name or "",
        row.family_name or "",
        row.username or "",
        row.grade or "",
        row.school or "",
        ";".join(row.schools),
        "" if row.graduation_year is None else row.graduation_year,
        row.last_modified.isoformat() if row.last_modified else "",
        row.role,
        row.status,
        row.raw_status or "",
        "true" if row.enabled else "false",
    ]


# In record id order, the order of the export.
REPORT_LIST = KeysetList(
    cursor_kind="student",
    where="this report",
    descending=False,
    default_size=DEFAULT_PAGE_SIZE,
    max_size=MAX_PAGE_SIZE,
)


def encode_cursor(record_id: int) -> str:
    return cursors.encode_cursor(REPORT_LIST.cursor_kind, record_id)


def _filtered(district_id: int, report_filter: ActiveStudentFilter) -> list[Any]:
    conditions: list[Any] = [
        roster.c.district_id == district_id,
        counts_against_license(roster),
    ]
    texts = (report_filter.source, report_filter.school, report_filter.grade, report_filter.search)
    if any(text and "\x00" in text for text in texts):
        # No stored text holds a NUL character (PostgreSQL refuses one): nothing can match.
        return [false()]
    if report_filter.source:
        conditions.append(roster.c.source == report_filter.source)
    if report_filter.school:
        school = report_filter.school
        conditions.append(
            or_(
                roster.c.school == school,
                roster.c.schools == school,
                roster.c.schools.like(f"{_escape(school)},%", escape="\\"),
                roster.c.schools.like(f"%,{_escape(school)}", escape="\\"),
                roster.c.schools.like(f"%,{_escape(school)},%", escape="\\"),
            )
        )
    if report_filter.grade:
        conditions.append(roster.c.grade == report_filter.grade)
    if report_filter.graduation_year is not None:
        conditions.append(roster.c.graduation_year == report_filter.graduation_year)
    if report_filter.modified_before is not None:
        conditions.append(
            roster.c.last_modified
            < datetime.combine(report_filter.modified_before, datetime.min.time(), tzinfo=UTC)
        )
    if report_filter.search:
        conditions.append(search_matches(report_filter.search))
    return conditions


def search_matches(search: str) -> ColumnElement[bool]:
    """A roster record whose name, username or id contains ``search`` (any letter case). The
    caller refuses a NUL character first (no stored text holds one).

    Read as one text (``db.search_sql``), which PostgreSQL's trigram index holds; a search text
    holding the separator between its fields is matched field by field, without the index."""
    text = search.strip().lower()
    needle = f"%{_escape(text)}%"
    if SEPARATOR not in text:
        return search_text(roster).like(needle, escape="\\")
    return or_(
        *(
            func.lower(column).like(needle, escape="\\")
            for column in (roster.c.username, roster.c.source_id)
        ),
        func.lower(whole_name(roster)).like(needle, escape="\\"),
    )


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def student_fields(values: Any) -> dict[str, Any]:
    """What every list of students shows of a stored roster record, by field name: its ids,
    name, school, grade and lifecycle (``schools`` is stored comma-separated)."""
    return {
        "id": values.id,
        "source_id": values.source_id,
        "person_key": values.person_key,
        "given_name": values.given_name,
        "family_name": values.family_name,
        "username": values.username,
        "grade": values.grade,
        "school": values.school,
        "schools": tuple(values.schools.split(",")) if values.schools else (),
        "graduation_year": values.graduation_year,
        "last_modified": values.last_modified,
        "status": rules.Lifecycle(values.lifecycle),
    }


def _row(values: Any) -> ActiveStudentRow:
    return ActiveStudentRow(
        **student_fields(values),
        source=values.source,
        role=rules.Role(values.role),
        raw_status=values.raw_status,
        enabled=values.enabled,
    )


def _page_query(conditions: list[Any], after_id: int | None, limit: int) -> Select[Any]:
    query = select(roster).where(*conditions)
    if after_id is not None:
        query = query.where(roster.c.id > after_id)
    return query.order_by(roster.c.id).limit(limit)


def active_student_page(
    session: Session,
    *,
    district_id: int,
    report_filter: ActiveStudentFilter,
    request: PageRequest,
) -> Page[ActiveStudentRow]:
    """One page of the report (at most MAX_PAGE_SIZE rows), forwards or backwards from a
    cursor; ValueError for a page size out of range or a cursor this report did not issue."""
    return keyset_page(
        session,
        keyset=REPORT_LIST,
        base=select(roster),
        conditions=_filtered(district_id, report_filter),
        key=roster.c.id,
        request=request,
        row_of=_row,
    )


def count_active_students(
    session: Session, *, district_id: int, report_filter: ActiveStudentFilter
) -> int:
    """Rows of the report matching the filter, on every page: with no filter, the count kept
    with the usage (the roster is not counted again)."""
    if report_filter == ActiveStudentFilter():
        return counted_records(session, district_id=district_id)
    conditions = _filtered(district_id, report_filter)
    return session.execute(select(func.count()).where(*conditions)).scalar_one()


def active_students_by_id(
    session: Session, *, district_id: int, record_ids: list[int]
) -> dict[int, ActiveStudentRow]:
    """The district's records among ``record_ids`` that count against the license now."""
    if not record_ids:
        return {}
    conditions = [*_filtered(district_id, ActiveStudentFilter()), roster.c.id.in_(record_ids)]
    return {
        values.id: _row(values) for values in session.execute(select(roster).where(*conditions))
    }


def iter_active_students(
    database: Database, *, district_id: int, report_filter: ActiveStudentFilter
) -> Generator[ActiveStudentRow, None, None]:
    """Every row of the report, read in batches: memory stays flat however large the roster."""
    conditions = _filtered(district_id, report_filter)
    after_id: int | None = None
    while True:
        with database.read() as session:
            batch = session.execute(_page_query(conditions, after_id, EXPORT_BATCH)).all()
        if not batch:
            return
        for values in batch:
            yield _row(values)
        after_id = batch[-1].id


# The stored columns of EXPORT_COLUMNS, in its order (but those the same on every row), and the
# record id the batches page by.
_EXPORT_SELECT = [
    roster.c.source,
    roster.c.source_id,
    roster.c.person_key,
    roster.c.given_name,
    roster.c.family_name,
    roster.c.username,
    roster.c.grade,
    roster.c.school,
    roster.c.schools,
    roster.c.graduation_year,
    # In UTC without an offset, as the driver gives it (``utc_text`` makes the text):
    # SQLAlchemy's conversion to a datetime in a time zone, then to UTC, would cost a fifth
    # of the export.
    NaiveUtc(roster.c.last_modified).label("last_modified"),
    roster.c.raw_status,
    roster.c.id,
]
# What role, status and enabled say on every row: the report's own condition (the counting
# rule) selects only these, so they are not read.
_COUNTED_ROLE = rules.Role.STUDENT.value
_COUNTED_STATUS = rules.Lifecycle.ACTIVE.value


def utc_text(value: datetime | str | None) -> str:
    """A moment read as ``NaiveUtc`` (a datetime, or on SQLite the stored text) as
    ``export_values`` writes it: ISO 8601 with ``+00:00``."""
    if value is None:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    # What the moment in UTC writes (``replace(tzinfo=UTC).isoformat()``), five times faster.
    return moment.isoformat() + "+00:00"


def iter_export_batches(
    database: Database, *, district_id: int, report_filter: ActiveStudentFilter
) -> Generator[list[list[Any]], None, None]:
    """The report's rows as ``export_values`` gives them (EXPORT_COLUMNS order), a batch at a
    time: the export of a million rows builds no row object, only the values it writes.

    The next batch is read in a thread of its own while the caller writes this one, so the
    database's work and the writing overlap; memory holds two batches at most."""
    conditions = _filtered(district_id, report_filter)

    def read(after_id: int | None) -> list[Any]:
        query = select(*_EXPORT_SELECT).where(*conditions)
        if after_id is not None:
            query = query.where(roster.c.id > after_id)
        with database.read() as session:
            return list(session.execute(query.order_by(roster.c.id).limit(EXPORT_BATCH)).all())

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export") as reader:
        batch = read(None)
        while batch:
            following = reader.submit(read, batch[-1].id)
            try:
                yield _export_values(batch)
            except GeneratorExit:
                following.cancel()
                raise
            batch = following.result()


def _export_values(batch: list[Any]) -> list[list[Any]]:
    # export_values, inlined: the same text for every value, at a fraction of the cost.
    return [
        [
            source,
            source_id,
            person_key,
            given_name or "",
            family_name or "",
            username or "",
            grade or "",
            school or "",
            schools.replace(",", ";") if schools else "",
            "" if graduation_year is None else graduation_year,
            utc_text(last_modified),
            _COUNTED_ROLE,
            _COUNTED_STATUS,
            raw_status or "",
            "true",
        ]
        for (
            source,
            source_id,
            person_key,
            given_name,
            family_name,
            username,
            grade,
            school,
            schools,
            graduation_year,
            last_modified,
            raw_status,
            _record_id,
        ) in batch
    ]


def iter_export_values(
    database: Database, *, district_id: int, report_filter: ActiveStudentFilter
) -> Generator[list[Any], None, None]:
    """The report's rows as ``export_values`` gives them, one at a time (read in batches:
    ``iter_export_batches``)."""
    for batch in iter_export_batches(
        database, district_id=district_id, report_filter=report_filter
    ):
        yield from batch
