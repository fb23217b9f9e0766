"""Queries that are more than a lookup by key: roster writes and the counting rule in SQL.

The counting rule itself is defined in ``licensing.domain.rules.count_roster``; ``recount_usage`` is its
set-based twin, and a test holds the two to the same answers. Which row counts is
``db.rules_sql.counts_against_license``, the one SQL form of the rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Table,
    and_,
    bindparam,
    case,
    delete,
    distinct,
    except_,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
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
    changes the district's counts by exactly the difference of two such counts.

    One pass: the roster's rows grouped by person, each person's facts summed. (Counting each
    figure on its own took five statements, two of them ``NOT IN`` a subquery, which PostgreSQL
    runs as a per-row rescan once the subquery outgrows its memory for hashing.)"""
    in_district = roster.c.district_id == district_id
    if people is not None:
        in_district = and_(in_district, roster.c.person_key.in_(people))
    person = (
        select(
            _any(counts_against_license(roster)).label("active"),
            _any(is_student(roster)).label("student"),
            _any(roster.c.role == STAFF).label("staff"),
            _any(
                and_(
                    is_student(roster),
                    roster.c.lifecycle == ACTIVE_LIFECYCLE,
                    roster.c.enabled.is_(False),
                )
            ).label("disabled"),
            func.count().label("records"),
            # The records that count (the active-student report's rows).
            _sum(case((counts_against_license(roster), 1), else_=0)).label("counted"),
        )
        .where(in_district)
        .group_by(roster.c.person_key)
        .subquery()
    )
    row = session.execute(
        select(
            _sum(person.c.active),
            _sum(person.c.student),
            _sum(case((person.c.student == 0, person.c.staff), else_=0)),
            _sum(case((person.c.active == 0, person.c.disabled), else_=0)),
            _sum(case((person.c.active == 1, person.c.records), else_=0)),
            _sum(person.c.counted),
        )
    ).one()
    active, students, staff, disabled, records_of_active_people, counted_records = (
        int(value) for value in row
    )
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


def _any(condition: Any) -> Any:
    """1 when the condition holds for any row of the group, else 0."""
    return func.max(case((condition, 1), else_=0))


def _sum(value: Any) -> Any:
    """The sum of ``value`` over the rows, 0 when there are none."""
    return func.coalesce(func.sum(value), 0)


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


# What a staged row is written with: its run, whether it removes a record (deltas), its values.
STAGED_COLUMNS = ["run_id", "removed", *ROW_COLUMNS]


def insert_staging_rows(
    session: Session, *, run_id: int, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Add rows to a run's staging rows: the bulk of a sync's writes, so each database gets its
    driver's fastest way of loading rows, with each value converted as SQLAlchemy converts it."""
    if not rows:
        return
    connection = session.connection()
    values = _staged_values(run_id, rows, connection.dialect)
    if connection.dialect.name == "postgresql":
        _copy_staging_rows(connection, values)
    else:
        _insert_staging_rows(connection, values)


# Two ways of loading the same rows, side by side: PostgreSQL's COPY takes the rows as one
# stream, several times faster than INSERT statements; SQLite has no COPY, and its fastest
# load is the driver's executemany of one prepared INSERT.


def _copy_staging_rows(connection: Connection, values: Iterator[tuple[Any, ...]]) -> None:
    """PostgreSQL: ``COPY ... FROM STDIN`` (psycopg's ``Cursor.copy``), on the session's own
    connection, so the rows are part of its transaction."""
    driver = connection.connection.driver_connection
    if driver is None:
        raise RuntimeError("the session's connection is closed")
    statement = f"COPY {staging.name} ({', '.join(STAGED_COLUMNS)}) FROM STDIN"
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in values:
                copy.write_row(row)
    except connection.dialect.loaded_dbapi.Error as error:
        raise _statement_error(connection, statement, error) from None


def _statement_error(connection: Connection, statement: str, error: Exception) -> BaseException:
    """The driver's error as SQLAlchemy raises it for a statement it runs (an IntegrityError for
    a duplicate key, say), the connection dropped from the pool if the server went away."""
    dialect = connection.dialect
    disconnected = dialect.is_disconnect(
        cast(Any, error), connection.connection.dbapi_connection, None
    )
    if disconnected:
        connection.invalidate(error)
    return DBAPIError.instance(
        statement,
        None,
        error,
        dialect.loaded_dbapi.Error,
        hide_parameters=True,
        connection_invalidated=disconnected,
        dialect=dialect,
    )


def _insert_staging_rows(connection: Connection, values: Iterator[tuple[Any, ...]]) -> None:
    """SQLite: one prepared INSERT, run by the driver for every row (``executemany``), without
    SQLAlchemy's handling of each row's parameters."""
    marks = ", ".join("?" for _ in STAGED_COLUMNS)
    connection.exec_driver_sql(
        f"INSERT INTO {staging.name} ({', '.join(STAGED_COLUMNS)}) VALUES ({marks})",
        list(values),
    )


def _staged_values(
    run_id: int, rows: Iterable[Mapping[str, Any]], dialect: Dialect
) -> Iterator[tuple[Any, ...]]:
    """Each row's values in the order of STAGED_COLUMNS, as SQLAlchemy would bind them."""
    values_of = itemgetter(*ROW_COLUMNS)
    converters = _value_converters(dialect)
    for row in rows:
        values = list(values_of(row))
        for index, convert in converters:
            value = values[index]
            if value is not None:
                values[index] = convert(value)
        yield (run_id, row.get("removed", False), *values)


_converters: dict[str, list[tuple[int, Any]]] = {}


def _value_converters(dialect: Dialect) -> list[tuple[int, Any]]:
    """(position in ROW_COLUMNS, function) for each column whose values SQLAlchemy converts when
    it binds them on this database: booleans, dates, and times (which must carry their time
    zone, stored in UTC)."""
    found = _converters.get(dialect.name)
    if found is None:
        processors = [
            staging.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in ROW_COLUMNS
        ]
        # Cached: a roster's records share few distinct dates and times, and formatting one for
        # SQLite costs more than looking it up.
        found = [
            (index, lru_cache(maxsize=4096)(convert))
            for index, convert in enumerate(processors)
            if convert
        ]
        _converters[dialect.name] = found
    return found


def analyze_staging(session: Session) -> None:
    """PostgreSQL: refresh the planner's statistics of the staging table, once a run's rows are
    loaded. Every run's rows carry a run id the last statistics have never seen, so without
    them the planner takes the run for one row and may scan it once per roster row; SQLite
    keeps no statistics unless asked."""
    if session.get_bind().dialect.name == "postgresql":
        # The columns statements find staged rows by: half the time of all columns.
        session.execute(text(f"ANALYZE {staging.name} (run_id, source_id, person_key, removed)"))


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
            ~_staged(run_id),
        )
        .union(
            select(staging.c.person_key).where(
                staging.c.run_id == run_id,
                staging.c.removed.is_(False),
                counts_against_license(staging),
            )
        )
        .subquery()
    )
    after = select(counted_after.c.person_key)
    # Set differences (EXCEPT): one hashed or sorted pass on both databases, however many people.
    lost = session.execute(
        select(func.count()).select_from(except_(counted_now, after).subquery())
    ).scalar_one()
    gained = session.execute(
        select(func.count()).select_from(except_(after, counted_now).subquery())
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
    added = session.execute(
        select(func.count()).where(in_run, ~_stored(district_id, source))
    ).scalar_one()
    removed = session.execute(select(func.count()).where(in_source, ~_staged(run_id))).scalar_one()
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
    """How a staged roster splits by the counting rule: counted, and excluded by reason (one
    pass over the run's rows)."""
    split = _row_split(session, staging, staging.c.run_id == run_id)
    active_people = session.execute(
        select(func.count(distinct(staging.c.person_key))).where(
            staging.c.run_id == run_id, counts_against_license(staging)
        )
    ).scalar_one()
    return {
        "records": split.records,
        "active_students": active_people,
        "staff": split.staff,
        "inactive": split.inactive,
        "disabled": split.disabled,
        "duplicate": split.counted - active_people,
    }


def removed_active_people(
    session: Session, *, district_id: int, source: str, run_id: int
) -> tuple[int, int]:
    """(active students the source has now, how many of them the staged roster no longer counts).

    The people no longer counted are a set difference (``EXCEPT``), which both databases run in
    one pass, hashed or sorted; ``NOT IN`` a subquery becomes a rescan per row on PostgreSQL past
    its hashing memory, and an anti-join on SQLite needs an index on the staged person keys."""
    held = select(roster.c.person_key).where(
        roster.c.district_id == district_id,
        roster.c.source == source,
        counts_against_license(roster),
    )
    still_active = select(staging.c.person_key).where(
        staging.c.run_id == run_id, counts_against_license(staging)
    )
    before = session.execute(
        select(func.count()).select_from(held.distinct().subquery())
    ).scalar_one()
    if not before:
        return 0, 0
    removed = session.execute(
        select(func.count()).select_from(except_(held, still_active).subquery())
    ).scalar_one()
    return before, removed


def swap_in_staged_roster(session: Session, *, district_id: int, source: str, run_id: int) -> None:
    """Make the staged roster the source's roster, and drop the staging rows (one transaction).

    Only what differs is written, record by record (by source id): the stored records the
    staged roster no longer has are deleted, those it changes are updated in place, and those
    it adds are inserted. A re-sync that changes 1% of a roster writes 1% of it, and a record
    keeps its id (an ``ActiveStudent``'s global id, its place in lists) for as long as the
    source lists it. Each statement finds its partner rows through a unique key: a hashed or
    merged join on PostgreSQL, an index search per row on SQLite."""
    in_source = _source_rows(district_id, source)
    removed = affected_rows(session.execute(delete(roster).where(in_source, ~_staged(run_id))))
    changed = affected_rows(
        session.execute(
            update(roster)
            .values({name: staging.c[name] for name in ROW_COLUMNS if name != "source_id"})
            .where(
                in_source,
                staging.c.run_id == run_id,
                staging.c.source_id == roster.c.source_id,
                or_(
                    *[
                        roster.c[name].is_distinct_from(staging.c[name])
                        for name in ROW_COLUMNS
                        if name != "source_id"
                    ]
                ),
            )
        )
    )
    kept = session.execute(select(roster.c.id).where(in_source).limit(1)).first()
    if kept is None:  # nothing stored is kept (a first sync): no record to leave out
        added = _store_staged(session, district_id, source, run_id)
    else:
        added = _store_staged(session, district_id, source, run_id, ~_stored(district_id, source))
    discard_staging(session, run_id=run_id)
    _analyze_roster_after(session, written=removed + changed + added)


def _stored(district_id: int, source: str) -> Any:
    """The staging row's record is stored in the source's roster (by id)."""
    return (
        exists()
        .where(_source_rows(district_id, source), roster.c.source_id == staging.c.source_id)
        .correlate(staging)
    )


# Rows a change must write, and the share of the roster table, for its statistics to be
# refreshed at once rather than by the autovacuum daemon a minute or more later.
ROSTER_ANALYZE_ROWS = 10_000
ROSTER_ANALYZE_SHARE = 0.1


def _analyze_roster_after(session: Session, *, written: int) -> None:
    """PostgreSQL: refresh the roster table's statistics after a change that wrote a large
    share of it (a district's first sync). The next statements on the district, a delta
    applied a minute later say, are planned from them: taking a new district's million rows for
    a few, the planner would compare them one by one with each person a delta touches."""
    if written < ROSTER_ANALYZE_ROWS or session.get_bind().dialect.name != "postgresql":
        return
    estimated = session.execute(
        text("SELECT reltuples FROM pg_class WHERE oid = CAST(:table AS regclass)"),
        {"table": roster.name},
    ).scalar_one()
    if written >= ROSTER_ANALYZE_SHARE * max(estimated, 0):
        session.execute(text(f"ANALYZE {roster.name}"))


def _store_staged(
    session: Session, district_id: int, source: str, run_id: int, *conditions: Any
) -> int:
    """Copy a run's staging rows (those meeting ``conditions``) into the source's roster; how
    many."""
    result = session.execute(
        roster.insert().from_select(
            ["district_id", "source", *ROW_COLUMNS],
            select(
                literal(district_id),
                literal(source),
                *[staging.c[name] for name in ROW_COLUMNS],
            ).where(staging.c.run_id == run_id, *conditions),
        ),
        execution_options={"preserve_rowcount": True},  # kept for UPDATE and DELETE only
    )
    return affected_rows(result)


def discard_staging(session: Session, *, run_id: int) -> None:
    session.execute(delete(staging).where(staging.c.run_id == run_id))


def stage_current_roster(session: Session, *, district_id: int, source: str, run_id: int) -> None:
    """Stage the source's stored people that the run has not staged itself, so a change of some
    people (an import that adds, a switch of a few) is staged as the source's whole roster."""
    session.execute(
        staging.insert().from_select(
            ["run_id", *ROW_COLUMNS],
            select(literal(run_id), *[roster.c[name] for name in ROW_COLUMNS]).where(
                roster.c.district_id == district_id,
                roster.c.source == source,
                ~_staged(run_id),
            ),
        )
    )


def _staged(run_id: int) -> Any:
    """The roster row's record is staged by the run (by id, through the staging unique key)."""
    return (
        exists()
        .where(staging.c.run_id == run_id, staging.c.source_id == roster.c.source_id)
        .correlate(roster)
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
