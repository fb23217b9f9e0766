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

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    case,
    delete,
    distinct,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.types import NullType
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
# Beside the usage counts: the records that count, the active-student report's rows.
REPORT_ROWS = "counted_records"

roster = table_of(RosterRecord)


class NaiveUtc(ColumnElement[Any]):
    """A stored moment read as its UTC wall time without an offset, as the driver gives it: a
    datetime on PostgreSQL (``timezone('UTC', ...)``), the stored text on SQLite (already UTC).
    For exports of many rows: no time zone to look up per row."""

    inherit_cache = True

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.column = column
        self.type = NullType()


@compiles(NaiveUtc)
def _naive_utc(element: NaiveUtc, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column, **kw))


@compiles(NaiveUtc, "postgresql")
def _naive_utc_postgresql(element: NaiveUtc, compiler: Any, **kw: Any) -> str:
    return f"timezone('UTC', {compiler.process(element.column, **kw)})"


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


def recount_usage(
    session: Session, *, district_id: int, people: Any | None = None
) -> dict[str, int]:
    """Count the district's roster and devices from scratch (the counting rule, in SQL).

    With ``people`` (a select of person keys), only those people are counted and devices are
    left out (0): every count is a sum over people, so a change that touches only these people
    changes the district's counts by exactly the difference of two such counts."""
    in_district = roster.c.district_id == district_id
    if people is not None:
        in_district = and_(in_district, roster.c.person_key.in_(people))
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
    counted_records = session.execute(select(func.count()).where(counts_as_active)).scalar_one()
    devices = 0
    if people is None:
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
        REPORT_ROWS: counted_records,
    }


def store_usage(
    session: Session, *, district_id: int, counts: Mapping[str, int], now: datetime
) -> None:
    """Store the counts of a roster as it is now, in the transaction that changed it: its
    version goes up, so what was kept of the roster before (the count review) is known old."""
    usage = session.get(DistrictUsage, district_id)
    if usage is None:
        usage = DistrictUsage(district_id=district_id, updated_at=now)
        session.add(usage)
    for name, value in counts.items():
        setattr(usage, name, value)
    usage.roster_version = (usage.roster_version or 0) + 1
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


# --- Deltas: a run's staging rows are changes to the source's roster, applied in place --------


@dataclass(frozen=True)
class RowSplit:
    """How some roster or staging rows split by the counting rule, row by row."""

    records: int = 0
    staff: int = 0
    inactive: int = 0  # students whose lifecycle is not active
    disabled: int = 0  # students active in the SIS whose account is disabled
    counted: int = 0  # rows that count against the license (before collapsing people)


def _row_split(session: Session, table: Table, *conditions: Any) -> RowSplit:
    students = is_student(table)

    def tally(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    row = session.execute(
        select(
            func.count(),
            tally(table.c.role == STAFF),
            tally(and_(students, table.c.lifecycle != ACTIVE_LIFECYCLE)),
            tally(
                and_(students, table.c.lifecycle == ACTIVE_LIFECYCLE, table.c.enabled.is_(False))
            ),
            tally(counts_against_license(table)),
        ).where(*conditions)
    ).one()
    return RowSplit(*(int(value) for value in row))


def _changed_ids(run_id: int) -> Any:
    return select(staging.c.source_id).where(staging.c.run_id == run_id)


def _source_rows(district_id: int, source: str) -> Any:
    return and_(roster.c.district_id == district_id, roster.c.source == source)


def delta_people(run_id: int) -> Any:
    """The person keys a delta run touches: those of its new records and those the changed
    records had (set by ``note_previous_people``)."""
    return (
        select(staging.c.person_key)
        .where(staging.c.run_id == run_id, staging.c.removed.is_(False))
        .union(
            select(staging.c.previous_person_key).where(
                staging.c.run_id == run_id, staging.c.previous_person_key.is_not(None)
            )
        )
    )


def note_previous_people(session: Session, *, district_id: int, source: str, run_id: int) -> None:
    """Write on each staged change the person key its stored record has now, if any."""
    session.execute(
        update(staging)
        .where(staging.c.run_id == run_id)
        .values(
            previous_person_key=select(roster.c.person_key)
            .where(_source_rows(district_id, source), roster.c.source_id == staging.c.source_id)
            .scalar_subquery()
        )
    )


@dataclass(frozen=True)
class DeltaEffect:
    """What a delta run would change in its source's roster."""

    replaced: RowSplit  # the stored rows it replaces or removes
    added: RowSplit  # the rows it stores
    upserts: int
    removals: int
    people_lost: int  # people the source counts now and would no longer count
    people_gained: int  # people the source would count and does not now


def _in_source_by_person(district_id: int, source: str) -> Any:
    """Rows of the source, written so that a query that also names people reads the roster by
    person: with ``source = ?`` itself, SQLite reads the whole source through its (district,
    source, id) index to find the few people a delta touches."""
    return and_(roster.c.district_id == district_id, case((roster.c.source == source, 1)) == 1)


def delta_effect(session: Session, *, district_id: int, source: str, run_id: int) -> DeltaEffect:
    """How a staged delta would change its source's roster, from the changed rows alone."""
    in_source = _source_rows(district_id, source)
    changed = _changed_ids(run_id)
    replaced = _row_split(session, roster, in_source, roster.c.source_id.in_(changed))
    added = _row_split(session, staging, staging.c.run_id == run_id, staging.c.removed.is_(False))
    removals = session.execute(
        select(func.count()).where(staging.c.run_id == run_id, staging.c.removed.is_(True))
    ).scalar_one()
    touched = delta_people(run_id)
    by_person = _in_source_by_person(district_id, source)
    counted_now = select(roster.c.person_key).where(
        by_person, counts_against_license(roster), roster.c.person_key.in_(touched)
    )
    counted_after = (
        select(roster.c.person_key)
        .where(
            by_person,
            counts_against_license(roster),
            roster.c.person_key.in_(touched),
            roster.c.source_id.not_in(changed),
        )
        .union(
            select(staging.c.person_key).where(
                staging.c.run_id == run_id,
                staging.c.removed.is_(False),
                counts_against_license(staging),
            )
        )
    )
    lost = session.execute(
        select(func.count(distinct(roster.c.person_key))).where(
            by_person,
            counts_against_license(roster),
            roster.c.person_key.in_(touched),
            roster.c.person_key.not_in(counted_after),
        )
    ).scalar_one()
    gained_rows = counted_after.subquery()
    gained = session.execute(
        select(func.count())
        .select_from(gained_rows)
        .where(gained_rows.c.person_key.not_in(counted_now))
    ).scalar_one()
    return DeltaEffect(
        replaced=replaced,
        added=added,
        upserts=added.records,
        removals=removals,
        people_lost=lost,
        people_gained=gained,
    )


def source_split(session: Session, *, district_id: int, source: str) -> tuple[RowSplit, int]:
    """The source's stored rows split by the counting rule, and the people it counts: what a
    delta starts from when no applied sync recorded it (a roster loaded otherwise)."""
    in_source = _source_rows(district_id, source)
    people = session.execute(
        select(func.count(distinct(roster.c.person_key))).where(
            in_source, counts_against_license(roster)
        )
    ).scalar_one()
    return _row_split(session, roster, in_source), people


def staged_change_counts(session: Session, *, run_id: int) -> tuple[int, int]:
    """(records a delta run adds or replaces, records it removes)."""
    row = session.execute(
        select(
            func.coalesce(func.sum(case((staging.c.removed.is_(False), 1), else_=0)), 0),
            func.coalesce(func.sum(case((staging.c.removed.is_(True), 1), else_=0)), 0),
        ).where(staging.c.run_id == run_id)
    ).one()
    return int(row[0]), int(row[1])


def apply_staged_delta(session: Session, *, district_id: int, source: str, run_id: int) -> None:
    """Replace and remove the changed records of the source and store the new ones (in the
    caller's transaction; the staging rows stay until ``discard_staging``)."""
    session.execute(
        delete(roster).where(
            _source_rows(district_id, source), roster.c.source_id.in_(_changed_ids(run_id))
        )
    )
    _store_staged(session, district_id, source, run_id, staging.c.removed.is_(False))


# What says how a record was exported rather than who the person is: a bulk file leaves the
# status and dateLastModified blank where a delta file fills them, so they are not corrections.
_EXPORT_METADATA = ("source_id", "raw_status", "last_modified")


@dataclass(frozen=True)
class RosterDifferences:
    """How a staged whole roster differs from the source's stored one, record by record."""

    added: int
    removed: int
    changed: int

    @property
    def total(self) -> int:
        return self.added + self.removed + self.changed


def staged_differences(
    session: Session, *, district_id: int, source: str, run_id: int
) -> RosterDifferences:
    """Records the staged roster adds, removes and changes (any stored field but the export's
    metadata) against the source's stored roster: what a full sync corrects after deltas."""
    in_source = _source_rows(district_id, source)
    in_run = staging.c.run_id == run_id
    stored_ids = select(roster.c.source_id).where(in_source)
    staged_ids = select(staging.c.source_id).where(in_run)
    added = session.execute(
        select(func.count()).where(in_run, staging.c.source_id.not_in(stored_ids))
    ).scalar_one()
    removed = session.execute(
        select(func.count()).where(in_source, roster.c.source_id.not_in(staged_ids))
    ).scalar_one()
    differs = or_(
        *[
            roster.c[name].is_distinct_from(staging.c[name])
            for name in ROW_COLUMNS
            if name not in _EXPORT_METADATA
        ]
    )
    changed = session.execute(
        select(func.count())
        .select_from(staging.join(roster, roster.c.source_id == staging.c.source_id))
        .where(in_run, in_source, differs)
    ).scalar_one()
    return RosterDifferences(added=added, removed=removed, changed=changed)


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
    _store_staged(session, district_id, source, run_id)
    discard_staging(session, run_id=run_id)


def _store_staged(
    session: Session, district_id: int, source: str, run_id: int, *conditions: Any
) -> None:
    """Copy a run's staging rows (those meeting ``conditions``) into the source's roster."""
    session.execute(
        roster.insert().from_select(
            ["district_id", "source", *ROW_COLUMNS],
            select(
                literal(district_id),
                literal(source),
                *[staging.c[name] for name in ROW_COLUMNS],
            ).where(staging.c.run_id == run_id, *conditions),
        )
    )


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
