"""Deactivating and reactivating students kept in the local roster (not owned by a SIS).

Students that come from a SIS are fixed in the SIS; the next sync shows the change. Students in
the local roster have no other home, so administrators switch them off and on here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlmodel import Session

from db.models import RosterRecord
from licensing.problems import Problem

LOCAL_SOURCE = "local"
MAX_IDS_PER_CHANGE = 1_000

roster = RosterRecord.__table__


@dataclass(frozen=True)
class StudentsChange:
    changed: int
    problems: list[Problem]


def set_local_students_enabled(
    session: Session, *, district_id: int, ids: Sequence[str], enabled: bool
) -> StudentsChange:
    """Enable or disable local-roster students by id: all of them, or none when any id is bad."""
    wanted = list(dict.fromkeys(identifier.strip() for identifier in ids if identifier.strip()))
    if not wanted:
        return StudentsChange(0, [Problem("NO_IDS", "Give at least one student id.", "ids")])
    if len(wanted) > MAX_IDS_PER_CHANGE:
        return StudentsChange(
            0,
            [
                Problem(
                    "TOO_MANY_IDS",
                    f"At most {MAX_IDS_PER_CHANGE} students can be changed at once; "
                    f"{len(wanted)} were given.",
                    "ids",
                )
            ],
        )
    # No stored id holds a NUL character (PostgreSQL refuses one): such an id is not found.
    storable = [identifier for identifier in wanted if "\x00" not in identifier]
    found = session.execute(
        select(roster.c.source_id, roster.c.source, roster.c.role).where(
            roster.c.district_id == district_id, roster.c.source_id.in_(storable)
        )
    ).all()
    local = {row.source_id for row in found if row.source == LOCAL_SOURCE and row.role == "student"}
    elsewhere: dict[str, str] = {}
    for row in found:
        if row.source != LOCAL_SOURCE:
            elsewhere.setdefault(row.source_id, row.source)
    problems = []
    for identifier in wanted:
        if identifier in local:
            continue
        if identifier in elsewhere:
            problems.append(
                Problem(
                    "OWNED_BY_SOURCE",
                    f"Student {identifier!r} comes from the roster source "
                    f"{elsewhere[identifier]!r}; change it there and the next sync will show it.",
                    "ids",
                )
            )
        else:
            problems.append(
                Problem(
                    "NOT_FOUND",
                    f"There is no student {identifier!r} in the local roster.",
                    "ids",
                )
            )
    if problems:
        return StudentsChange(0, problems)
    result = session.execute(
        update(roster)
        .where(
            roster.c.district_id == district_id,
            roster.c.source == LOCAL_SOURCE,
            roster.c.source_id.in_(wanted),
            roster.c.enabled.is_(not enabled),
        )
        .values(enabled=enabled)
    )
    return StudentsChange(result.rowcount, [])
