"""Turning what roster sources report into stored records and exact, maintained counts.

Plugins report facts in their own words; this module maps them onto the counting rule's terms
(``Role``, ``Lifecycle``) and keeps the usage counts exact (``refresh_usage`` in the transaction that changed the roster), so
a read never has to count. Changes of a roster go through ``licensing.roster_changes``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from db import queries
from db.models import DistrictUsage
from licensing.rules import Lifecycle, Role
from plugins.records import RosterFileError, RowProblem, StudentRecord

STUDENT_ROLES = {"student"}
STAFF_ROLES = {
    "teacher",
    "staff",
    "administrator",
    "aide",
    "proctor",
    "counselor",
    "principal",
    "districtadministrator",
    "siteadministrator",
    "systemadministrator",
}
# People a roster may list who are neither students nor staff: never counted, never stored.
OTHER_ROLES = {"guardian", "parent", "relative"}
LIFECYCLE_WORDS = {
    "active": (Lifecycle.ACTIVE, True),
    "pre-registered": (Lifecycle.PRE_REGISTERED, True),
    "preregistered": (Lifecycle.PRE_REGISTERED, True),
    "inactive": (Lifecycle.INACTIVE, True),
    "transferred": (Lifecycle.TRANSFERRED, True),
    "graduated": (Lifecycle.GRADUATED, True),
    "withdrawn": (Lifecycle.WITHDRAWN, True),
    "deleted": (Lifecycle.DELETED, True),
    "tobedeleted": (Lifecycle.DELETED, True),
    "disabled": (Lifecycle.INACTIVE, False),
}


@dataclass(frozen=True)
class UsageCounts:
    active_students: int
    inactive_students: int  # every student who does not count, disabled ones included
    staff: int
    devices: int
    duplicates_collapsed: int
    disabled_students: int = 0  # of the inactive students, those whose account is disabled


async def collect_records(result: Any) -> list[Any]:
    """What a roster source's ``fetch_students`` returned, as a list.

    Sources may return a list, any iterable, an async iterable, or an awaitable of one of those.
    """
    if inspect.isawaitable(result):
        result = await result
    if hasattr(result, "__aiter__"):
        return [record async for record in result]
    return list(result)


def role_of(word: str | None) -> Role | None:
    """The counting rule's role for a source's role word (None for guardians, parents and
    relatives, who are neither), or ValueError naming a word it does not know."""
    if not isinstance(word, str):
        raise ValueError(f"the role must be a word such as student or teacher, not {word!r}")
    role_word = word.strip().lower()
    if role_word in STUDENT_ROLES:
        return Role.STUDENT
    if role_word in STAFF_ROLES:
        return Role.STAFF
    if role_word in OTHER_ROLES:
        return None
    raise ValueError(
        f"role {word!r} is neither a student nor a staff role "
        f"(student, {', '.join(sorted(STAFF_ROLES | OTHER_ROLES))})"
    )


def lifecycle_of(word: str | None) -> tuple[Lifecycle, bool]:
    """The lifecycle (and whether it leaves the account enabled) for a source's status word."""
    if not isinstance(word, str):
        raise ValueError(f"the status must be a word such as active or graduated, not {word!r}")
    status_word = word.strip().lower()
    if status_word not in LIFECYCLE_WORDS:
        raise ValueError(f"status {word!r} is not one of {', '.join(LIFECYCLE_WORDS)}")
    return LIFECYCLE_WORDS[status_word]


def normalize(record: StudentRecord | Mapping[str, Any], *, position: int) -> dict[str, Any] | None:
    """One stored row for ``record``, None for someone neither student nor staff (a guardian),
    or ValueError saying what is wrong with it."""
    if isinstance(record, Mapping):
        try:
            record = StudentRecord(**record)
        except TypeError as error:
            raise ValueError(f"record {position}: {error}") from None
    source_id = "" if record.source_id is None else str(record.source_id).strip()
    if not source_id:
        raise ValueError("the id is empty")
    role = role_of(record.role)
    lifecycle, status_enabled = lifecycle_of(record.status)
    if not isinstance(record.enabled, bool):
        raise ValueError(f"enabled must be true or false, not {record.enabled!r}")
    if role is None:
        return None
    schools = [school for school in record.schools if school]
    primary_school = record.primary_school or (schools[0] if schools else None)
    return {
        "source_id": source_id,
        "person_key": (record.person_key or "").strip() or source_id,
        "role": role.value,
        "lifecycle": lifecycle.value,
        "enabled": record.enabled and status_enabled,
        "raw_status": record.raw_status if record.raw_status is not None else record.status,
        "given_name": record.given_name,
        "family_name": record.family_name,
        "username": record.username,
        "grade": record.grade,
        "school": primary_school,
        "schools": ",".join(schools) or None,
        "graduation_year": record.graduation_year,
        "enrollment_end": record.enrollment_end,
        "last_modified": record.last_modified,
    }


def normalize_all(
    records: Iterable[StudentRecord | Mapping[str, Any]], *, district_id: int, source: str
) -> list[dict[str, Any]]:
    """Every record as a stored row, or RosterFileError listing each bad one (nothing applied)."""
    rows: list[dict[str, Any]] = []
    problems: list[RowProblem] = []
    seen: set[str] = set()
    for position, record in enumerate(records, start=1):
        try:
            row = normalize(record, position=position)
        except ValueError as error:
            problems.append(RowProblem(position, None, str(error)))
            continue
        if row is None:
            continue
        if row["source_id"] in seen:
            problems.append(RowProblem(position, None, f"id {row['source_id']!r} appears twice"))
            continue
        seen.add(row["source_id"])
        rows.append({**row, "district_id": district_id, "source": source})
    if problems:
        raise RosterFileError(f"roster source {source!r}", problems)
    return rows


def current_usage(session: Session, *, district_id: int) -> UsageCounts:
    return usage_counts(session.get(DistrictUsage, district_id))


def usage_counts(stored: DistrictUsage | None) -> UsageCounts:
    """The stored counts (all zero before the first count)."""
    if stored is None:
        return UsageCounts(0, 0, 0, 0, 0, 0)
    return UsageCounts(
        active_students=stored.active_students,
        inactive_students=stored.inactive_students,
        staff=stored.staff,
        devices=stored.devices,
        duplicates_collapsed=stored.duplicates_collapsed,
        disabled_students=stored.disabled_students,
    )


def refresh_usage(session: Session, *, district_id: int, now: datetime) -> UsageCounts:
    """Recount and store the district's usage; call inside the transaction that changed it."""
    counts = queries.recount_usage(session, district_id=district_id)
    queries.store_usage(session, district_id=district_id, counts=counts, now=now)
    return UsageCounts(**counts)


def usage_mismatch(session: Session, *, district_id: int) -> dict[str, tuple[int, int]]:
    """Counts whose stored value differs from a recount: name -> (stored, recounted)."""
    stored = asdict(current_usage(session, district_id=district_id))
    recounted = queries.recount_usage(session, district_id=district_id)
    return {
        name: (stored[name], value) for name, value in recounted.items() if stored[name] != value
    }
