"""Deactivating and reactivating students kept in the local roster (not owned by a SIS).

Students that come from a SIS are fixed in the SIS; the next sync shows the change. Students in
the local roster have no other home, so administrators switch them off and on here. This module
checks the request; the change itself goes through ``licensing.storage.roster_changes`` like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlmodel import Session

from db.models import RosterRecord, table_of
from licensing.domain.error_codes import ErrorCode
from licensing.problems import Problem

LOCAL_SOURCE = "local"
MAX_IDS_PER_CHANGE = 1_000

roster = table_of(RosterRecord)


@dataclass(frozen=True)
class RefusedId:
    """An id a change was refused for: NOT_FOUND, or OWNED_BY_SOURCE with the source named."""

    id: str
    code: ErrorCode
    source: str | None = None


@dataclass(frozen=True)
class StudentsRequest:
    ids: list[str]  # the ids to switch, each once, when there are no problems
    problems: list[Problem]
    refused: list[RefusedId] = field(default_factory=list)


def check_local_students(
    session: Session, *, district_id: int, ids: Sequence[str]
) -> StudentsRequest:
    """The local-roster students to switch on or off: all of them, or problems when any id is
    bad (a change is all or nothing)."""
    wanted = list(dict.fromkeys(identifier.strip() for identifier in ids if identifier.strip()))
    if not wanted:
        return StudentsRequest(
            [], [Problem(ErrorCode.NO_IDS, "Give at least one student id.", "ids")]
        )
    if len(wanted) > MAX_IDS_PER_CHANGE:
        return StudentsRequest(
            [],
            [
                Problem(
                    ErrorCode.TOO_MANY_IDS,
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
    refused = []
    for identifier in wanted:
        if identifier in local:
            continue
        if identifier in elsewhere:
            refused.append(RefusedId(identifier, ErrorCode.OWNED_BY_SOURCE, elsewhere[identifier]))
            problems.append(
                Problem(
                    ErrorCode.OWNED_BY_SOURCE,
                    f"Student {identifier!r} comes from the roster source "
                    f"{elsewhere[identifier]!r}; change it there and the next sync will show it.",
                    "ids",
                )
            )
        else:
            refused.append(RefusedId(identifier, ErrorCode.NOT_FOUND))
            problems.append(
                Problem(
                    ErrorCode.NOT_FOUND,
                    f"There is no student {identifier!r} in the local roster.",
                    "ids",
                )
            )
    return StudentsRequest([] if problems else wanted, problems, refused)
