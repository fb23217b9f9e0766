"""The local roster's deactivated students: those ``reactivateStudents`` switches back on.

A district's deactivated local students are the local roster's student records with ``enabled``
off, whatever their lifecycle. The list is paged by record id (``licensing.storage.paging``) and
read through the partial index ``ix_roster_record_disabled``, which holds only disabled records:
a page, a count or a search reads the deactivated students, never the rest of the roster.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, false, func, select
from sqlmodel import Session

from db.models import RosterRecord, table_of
from db.rules_sql import is_student
from licensing.domain import rules
from licensing.storage.local_students import LOCAL_SOURCE
from licensing.storage.paging import KeysetList, Page, PageRequest, keyset_page
from licensing.storage.student_report import search_matches, student_fields

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50

roster = table_of(RosterRecord)

# In record id order. A change of the local roster stores its records anew, so a cursor read
# before one points past rows that have new ids since: read the list again from its start.
DEACTIVATED_LIST = KeysetList(
    cursor_kind="deactivated",
    where="the deactivated students",
    descending=False,
    default_size=DEFAULT_PAGE_SIZE,
    max_size=MAX_PAGE_SIZE,
)


@dataclass(frozen=True)
class DeactivatedStudentRow:
    id: int
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
    status: rules.Lifecycle

    @property
    def counts_when_reactivated(self) -> bool:
        """Reactivating them makes the record count (an inactive lifecycle never counts)."""
        return self.status == rules.Lifecycle.ACTIVE


def _deactivated(district_id: int, search: str | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        roster.c.district_id == district_id,
        roster.c.source == LOCAL_SOURCE,
        # Written as `enabled = false` (`= 0` on SQLite): the partial index's own condition, so
        # that both databases read through it.
        roster.c.enabled == false(),
        is_student(roster),
    ]
    if search is not None and search.strip():
        if "\x00" in search:
            # No stored text holds a NUL character (PostgreSQL refuses one): nothing can match.
            return [false()]
        conditions.append(search_matches(search))
    return conditions


def _row(values: Any) -> DeactivatedStudentRow:
    return DeactivatedStudentRow(**student_fields(values))


def deactivated_student_page(
    session: Session, *, district_id: int, search: str | None, request: PageRequest
) -> Page[DeactivatedStudentRow]:
    """One page of the district's deactivated local students (those whose name, username or id
    contains ``search``, when given), forwards or backwards from a cursor; ValueError for a page
    size out of range or a cursor this list did not issue."""
    return keyset_page(
        session,
        keyset=DEACTIVATED_LIST,
        base=select(roster),
        conditions=_deactivated(district_id, search),
        key=roster.c.id,
        request=request,
        row_of=_row,
    )


def count_deactivated_students(session: Session, *, district_id: int, search: str | None) -> int:
    """The district's deactivated local students matching ``search``, on every page."""
    return session.execute(
        select(func.count()).where(*_deactivated(district_id, search))
    ).scalar_one()


def deactivated_students_by_id(
    session: Session, *, district_id: int, record_ids: list[int]
) -> dict[int, DeactivatedStudentRow]:
    """The district's records among ``record_ids`` that are deactivated local students now."""
    if not record_ids:
        return {}
    conditions = [*_deactivated(district_id, None), roster.c.id.in_(record_ids)]
    return {
        values.id: _row(values) for values in session.execute(select(roster).where(*conditions))
    }
