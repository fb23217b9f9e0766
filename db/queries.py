"""Queries that are more than a lookup by key: roster writes and the counting rule in SQL.

The counting rule itself is defined in ``licensing.domain.rules.count_roster``; ``recount_usage`` is its
set-based twin, and a test holds the two to the same answers. Which row counts is
``db.rules_sql.counts_against_license``, the one SQL form of the rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, distinct, func, literal, select, update
from sqlmodel import Session, col

from db.models import (
    Device,
    District,
    DistrictUsage,
    License,
    LicenseSettings,
    LicenseSyncState,
    RosterRecord,
    RosterStaging,
    RosterSyncRun,
    table_of,
)
from db.rules_sql import ACTIVE_LIFECYCLE, counts_against_license, is_student
from db.session import affected_rows

STAFF = "staff"
INSERT_CHUNK = 5_000

roster = table_of(RosterRecord)


def replace_roster_rows(
    session: Session, *, district_id: int, source: str, rows: Iterable[Mapping[str, Any]]
) -> None:
    """Write ``rows`` as a new district's roster, for benchmarks that load millions of rows.

    Nothing of the service calls this: every change of a roster goes through
    ``licensing.storage.roster_changes``, with its hold, audit event and change event.
    """
    session.execute(
        delete(roster).where(roster.c.district_id == district_id, roster.c.source == source)
    )
    for chunk in _chunks(rows):
        session.execute(roster.insert(), chunk)


def _chunks(rows: Iterable[Mapping[str, Any]]) -> Iterable[list[Mapping[str, Any]]]:
    chunk: list[Mapping[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= INSERT_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def recount_usage(session: Session, *, district_id: int) -> dict[str, int]:
    """Count the district's roster and devices from scratch (the counting rule, in SQL)."""
    in_district = roster.c.district_id == district_id
    students_here = and_(in_district, is_student(roster))
    counts_as_active = and_(in_district, counts_against_license(roster))
    active_people = select(roster.c.person_key).where(counts_as_active).distinct()
    student_people = select(roster.c.person_key).where(students_here).distinct()

    active = session.execute(
        select(func.count(distinct(roster.c.person_key))).where(counts_as_active)
    ).scalar_one()
    students = session.execute(
        select(func.count(distinct(roster.c.person_key))).where(students_here)
    ).scalar_one()
    staff = session.execute(
        select(func.count(distinct(roster.c.person_key))).where(
            in_district,
            roster.c.role == STAFF,
            roster.c.person_key.not_in(student_people),
        )
    ).scalar_one()
    disabled = session.execute(
        select(func.count(distinct(roster.c.person_key))).where(
            students_here,
            roster.c.lifecycle == ACTIVE_LIFECYCLE,
            roster.c.enabled.is_(False),
            roster.c.person_key.not_in(active_people),
        )
    ).scalar_one()
    records_of_active_people = session.execute(
        select(func.count()).where(in_district, roster.c.person_key.in_(active_people))
    ).scalar_one()
    devices = session.execute(
        select(func.count()).select_from(Device).where(col(Device.district_id) == district_id)
    ).scalar_one()
    return {
        "active_students": active,
        "inactive_students": students - active,
        "disabled_students": disabled,
        "staff": staff,
        "devices": devices,
        "duplicates_collapsed": records_of_active_people - active,
    }


def store_usage(
    session: Session, *, district_id: int, counts: Mapping[str, int], now: datetime
) -> None:
    usage = session.get(DistrictUsage, district_id)
    if usage is None:
        usage = DistrictUsage(district_id=district_id, updated_at=now)
        session.add(usage)
    for name, value in counts.items():
        setattr(usage, name, value)
    usage.updated_at = now
    session.flush()


staging = table_of(RosterStaging)
ROW_COLUMNS = [
    column.name for column in roster.columns if column.name not in ("id", "district_id", "source")
]


def insert_staging_rows(
    session: Session, *, run_id: int, rows: Sequence[Mapping[str, Any]]
) -> None:
    session.execute(staging.insert(), [{**row, "run_id": run_id} for row in rows])


def staged_statistics(session: Session, *, run_id: int) -> dict[str, int]:
    """How a staged roster splits by the counting rule: counted, and excluded by reason."""
    in_run = staging.c.run_id == run_id
    students_in_run = and_(in_run, is_student(staging))
    active_lifecycle = and_(students_in_run, staging.c.lifecycle == ACTIVE_LIFECYCLE)
    counts = and_(in_run, counts_against_license(staging))

    def count(*conditions: Any) -> int:
        return session.execute(select(func.count()).where(*conditions)).scalar_one()

    active_records = count(counts)
    active_people = session.execute(
        select(func.count(distinct(staging.c.person_key))).where(counts)
    ).scalar_one()
    return {
        "records": count(in_run),
        "active_students": active_people,
        "staff": count(in_run, staging.c.role == STAFF),
        "inactive": count(students_in_run, staging.c.lifecycle != ACTIVE_LIFECYCLE),
        "disabled": count(active_lifecycle, staging.c.enabled.is_(False)),
        "duplicate": active_records - active_people,
    }


def removed_active_people(
    session: Session, *, district_id: int, source: str, run_id: int
) -> tuple[int, int]:
    """(active students the source has now, how many of them the staged roster no longer counts)."""
    held = and_(
        roster.c.district_id == district_id,
        roster.c.source == source,
        counts_against_license(roster),
    )
    still_active = select(staging.c.person_key).where(
        staging.c.run_id == run_id, counts_against_license(staging)
    )
    before = session.execute(
        select(func.count(distinct(roster.c.person_key))).where(held)
    ).scalar_one()
    removed = session.execute(
        select(func.count(distinct(roster.c.person_key))).where(
            held, roster.c.person_key.not_in(still_active)
        )
    ).scalar_one()
    return before, removed


def swap_in_staged_roster(session: Session, *, district_id: int, source: str, run_id: int) -> None:
    """Make the staged roster the source's roster, and drop the staging rows (one transaction)."""
    session.execute(
        delete(roster).where(roster.c.district_id == district_id, roster.c.source == source)
    )
    session.execute(
        roster.insert().from_select(
            ["district_id", "source", *ROW_COLUMNS],
            select(
                literal(district_id),
                literal(source),
                *[staging.c[name] for name in ROW_COLUMNS],
            ).where(staging.c.run_id == run_id),
        )
    )
    discard_staging(session, run_id=run_id)


def discard_staging(session: Session, *, run_id: int) -> None:
    session.execute(delete(staging).where(staging.c.run_id == run_id))


def stage_current_roster(session: Session, *, district_id: int, source: str, run_id: int) -> None:
    """Stage the source's stored people that the run has not staged itself, so a change of some
    people (an import that adds, a switch of a few) is staged as the source's whole roster."""
    staged_ids = select(staging.c.source_id).where(staging.c.run_id == run_id)
    session.execute(
        staging.insert().from_select(
            ["run_id", *ROW_COLUMNS],
            select(literal(run_id), *[roster.c[name] for name in ROW_COLUMNS]).where(
                roster.c.district_id == district_id,
                roster.c.source == source,
                roster.c.source_id.not_in(staged_ids),
            ),
        )
    )


def set_staged_enabled(session: Session, *, run_id: int, ids: list[str], enabled: bool) -> int:
    """Switch staged people on or off by id; how many changed."""
    result = session.execute(
        update(staging)
        .where(
            staging.c.run_id == run_id,
            staging.c.source_id.in_(ids),
            staging.c.enabled.is_(not enabled),
        )
        .values(enabled=enabled)
    )
    return affected_rows(result)


def discard_unneeded_staging(
    session: Session, *, keep_statuses: Iterable[str], district_id: int | None = None
) -> None:
    """Remove the staging rows of every run that no longer needs them (applied, failed,
    superseded), however it ended: a process killed before cleaning up leaves none for long."""
    runs = table_of(RosterSyncRun)
    done = select(runs.c.id).where(runs.c.status.not_in(list(keep_statuses)))
    if district_id is not None:
        done = done.where(runs.c.district_id == district_id)
    session.execute(delete(staging).where(staging.c.run_id.in_(done)))


@dataclass(frozen=True)
class DistrictRows:
    """A district's stored licensing rows, as read together by ``district_rows``."""

    district: District
    license: License | None
    sync: LicenseSyncState | None
    settings: LicenseSettings | None
    usage: DistrictUsage | None


def district_rows(session: Session, *, district_id: int) -> DistrictRows | None:
    """The district with its license, sync state, settings and stored counts: one statement,
    since the dashboard reads them on every request."""
    row = session.execute(_DISTRICT_ROWS, {"district_id": district_id}).first()
    return None if row is None else DistrictRows(*row)


# Built once: building a statement costs more than running this one.
_DISTRICT_ROWS = (
    select(
        District,
        License,
        LicenseSyncState,
        LicenseSettings,
        DistrictUsage,
    )
    .outerjoin(License, col(License.district_id) == District.id)
    .outerjoin(LicenseSyncState, col(LicenseSyncState.district_id) == District.id)
    .outerjoin(LicenseSettings, col(LicenseSettings.district_id) == District.id)
    .outerjoin(DistrictUsage, col(DistrictUsage.district_id) == District.id)
    .where(col(District.id) == bindparam("district_id"))
)
