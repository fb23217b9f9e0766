"""Turning what roster sources report into stored records and exact, maintained counts.

Plugins report facts in their own words; this module maps them onto the counting rule's terms
(``Role``, ``Lifecycle``) and keeps the usage counts exact (``refresh_usage`` in the transaction that changed the roster), so
a read never has to count. Changes of a roster go through ``licensing.storage.roster_changes``.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from sqlmodel import Session

from db import queries
from db.limits import INTEGER_RANGE, ColumnShape, column_shapes
from db.models import DistrictUsage, RosterRecord, RosterStaging
from db.queries import REPORT_ROWS
from licensing.domain.rules import Lifecycle, Role
from plugins.records import (
    FieldProblem,
    RosterDelta,
    RosterFileError,
    RowProblem,
    SourceError,
    StudentRecord,
    SyncCursor,
)

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
# OneRoster extension roles ("ext:counselor"): a person known only by one is no student.
EXTENSION_ROLE_PREFIX = "ext:"
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


# What each field of a stored roster row can hold, read from the two tables a row goes through,
# so SQLite (which would store anything) and PostgreSQL (which refuses) refuse the same values.
STORED_SHAPES = column_shapes(RosterStaging, RosterRecord)
# The stored fields a source's record gives: its texts (with their limits) and the others.
_SOURCE_TEXTS = (
    "source_id",
    "person_key",
    "raw_status",
    "given_name",
    "family_name",
    "username",
    "grade",
    "school",
    "schools",
)


def _text_limit(name: str) -> int:
    limit = STORED_SHAPES[name].max_length
    if limit is None:  # every text a source gives is stored in a column of bounded length
        raise TypeError(f"the roster column {name!r} has no length limit")
    return limit


_LIMITS_ASCENDING = sorted((_text_limit(name), index) for index, name in enumerate(_SOURCE_TEXTS))
_SOURCE_OTHERS = ("graduation_year", "enrollment_end", "last_modified")
_SOURCE_OTHER_SHAPES = tuple(STORED_SHAPES[name] for name in _SOURCE_OTHERS)
_NONE_OR_DATE = (type(None), date)
_NONE_OR_TIME = (type(None), datetime)


class UnfitRecord(ValueError):
    """A record holding values the roster cannot store. ``source_id`` is the record's id, or
    None when the id itself is one of the problems (it is then not repeated)."""

    def __init__(self, problems: list[FieldProblem], *, source_id: str | None) -> None:
        self.problems = problems
        self.source_id = source_id
        super().__init__("; ".join(f"{item.field}: {item.message}" for item in problems))


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
    if isinstance(result, RosterDelta):
        raise SourceError(
            "The source delivered changes (a delta), not a roster: an import takes whole "
            "records; configure the source and run `licensing sync` to apply changes."
        )
    # A cursor says where a delta would start: an import has no use for it.
    if hasattr(result, "__aiter__"):
        return [record async for record in result if not isinstance(record, SyncCursor)]
    return [record for record in result if not isinstance(record, SyncCursor)]


def role_of(word: str | None) -> Role | None:
    """The counting rule's role for a source's role word (None for guardians, parents,
    relatives and ``ext:`` extension roles, who are neither), or ValueError naming a word it
    does not know."""
    if not isinstance(word, str):
        raise ValueError(f"the role must be a word such as student or teacher, not {word!r}")
    role_word = word.strip().lower()
    if role_word in STUDENT_ROLES:
        return Role.STUDENT
    if role_word in STAFF_ROLES:
        return Role.STAFF
    if role_word in OTHER_ROLES:
        return None
    if role_word.startswith(EXTENSION_ROLE_PREFIX) and len(role_word) > len(EXTENSION_ROLE_PREFIX):
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


def unfit_values(row: Mapping[str, Any]) -> list[FieldProblem]:
    """The values of a stored row that its column cannot hold, the same on every database:
    the wrong type, a NUL character or a lone surrogate (which PostgreSQL and UTF-8 refuse),
    more characters than the column holds, or an integer outside PostgreSQL's INTEGER."""
    problems = []
    for name, value in row.items():
        shape = STORED_SHAPES.get(name)
        if value is None or shape is None:
            continue
        message = _unfit(value, shape)
        if message is not None:
            problems.append(FieldProblem(name, message))
    return problems


def _texts_fit(texts: list[Any]) -> bool:
    """Whether the texts of ``_SOURCE_TEXTS`` (in its order, "" for none) surely fit: the check
    of every row of a sync, at C speed; when it says no, ``unfit_values`` says what is wrong."""
    try:
        joined = "".join(texts)
        if "\x00" in joined or not (joined.isascii() or joined.encode("utf-8")):
            return False
    except (TypeError, UnicodeEncodeError):  # not text, or a lone surrogate
        return False
    # Every field fits when all the text together does; else the fields with smaller limits.
    total = len(joined)
    for limit, index in _LIMITS_ASCENDING:
        if limit >= total:
            return True
        if len(texts[index]) > limit:
            return False
    return True


def _unfit(value: Any, shape: ColumnShape) -> str | None:
    kind = shape.python_type
    if kind is str:
        if not isinstance(value, str):
            return f"must be text, not {type(value).__name__}"
        if "\x00" in value:
            return "holds a NUL character (\\x00), which cannot be stored"
        if not value.isascii() and not _is_unicode(value):
            return "holds a lone surrogate, which is not Unicode text and cannot be stored"
        if shape.max_length is not None and len(value) > shape.max_length:
            return f"{len(value)} characters, more than the {shape.max_length} this field holds"
        return None
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            return f"must be a whole number, not {type(value).__name__}"
        low, high = INTEGER_RANGE
        if not low <= value <= high:
            return f"{value} is out of range (a whole number from {low} to {high})"
        return None
    if kind is datetime and not isinstance(value, datetime):
        return f"must be a date and time, not {type(value).__name__}"
    if kind is date and (not isinstance(value, date) or isinstance(value, datetime)):
        return f"must be a date, not {type(value).__name__}"
    if kind is bool and not isinstance(value, bool):
        return f"must be true or false, not {type(value).__name__}"
    return None


def _is_unicode(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def normalize(record: StudentRecord | Mapping[str, Any], *, position: int) -> dict[str, Any] | None:
    """One stored row for ``record``, None for someone neither student nor staff (a guardian),
    or ValueError saying what is wrong with it (UnfitRecord for values the row cannot hold)."""
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
    row = _checked_records.take(record, source_id) or _source_values(record, source_id)
    row["role"] = role.value
    row["lifecycle"] = lifecycle.value
    row["enabled"] = record.enabled and status_enabled
    return row


def _source_values(record: StudentRecord, source_id: str) -> dict[str, Any]:
    """The stored row but for the host's own words (role, lifecycle, enabled), checked:
    UnfitRecord names each value its column cannot hold."""
    schools = [school for school in record.schools if school]
    person_key = _stripped(record.person_key) or source_id
    raw_status = record.raw_status if record.raw_status is not None else record.status
    school = record.primary_school or (schools[0] if schools else None)
    try:
        joined = ",".join(schools) or None
    except TypeError:  # a school that is not text
        joined = ",".join(map(str, schools))
    values = {
        "source_id": source_id,
        "person_key": person_key,
        "raw_status": raw_status,
        "given_name": record.given_name,
        "family_name": record.family_name,
        "username": record.username,
        "grade": record.grade,
        "school": school,
        "schools": joined,
        "graduation_year": record.graduation_year,
        "enrollment_end": record.enrollment_end,
        "last_modified": record.last_modified,
    }
    # In the order of _SOURCE_TEXTS and _SOURCE_OTHERS.
    given = (
        source_id,
        person_key,
        raw_status,
        record.given_name,
        record.family_name,
        record.username,
        record.grade,
        school,
        joined,
    )
    texts = ["" if text is None else text for text in given]
    others = (record.graduation_year, record.enrollment_end, record.last_modified)
    if _texts_fit(texts) and (
        # The usual record first: no year, and dates of exactly the stored types.
        (
            others[0] is None
            and type(others[1]) in _NONE_OR_DATE
            and type(others[2]) in _NONE_OR_TIME
        )
        or not any(map(_unfit_other, others, _SOURCE_OTHER_SHAPES))
    ):
        return values
    problems = unfit_values(values)
    if not all(isinstance(school, str) for school in schools):
        problems.append(FieldProblem("schools", "must be a list of texts"))
    if person_key == source_id:  # the id stands in for the key: report it once
        problems = [problem for problem in problems if problem.field != "person_key"]
    id_fits = all(problem.field != "source_id" for problem in problems)
    raise UnfitRecord(problems, source_id=source_id if id_fits else None)


def _unfit_other(value: Any, shape: ColumnShape) -> str | None:
    return None if value is None else _unfit(value, shape)


def unfit_fields(record: StudentRecord) -> list[FieldProblem]:
    """The values of ``record`` its stored row could not hold: for sources that read a file, to
    report each at its line and column (``normalize`` finds the same ones, and other mistakes)."""
    source_id = "" if record.source_id is None else str(record.source_id).strip()
    try:
        values = _source_values(record, source_id)
    except UnfitRecord as unfit:
        return unfit.problems
    _checked_records.keep(record, values)
    return []


class _CheckedRecords:
    """The stored values of the records a source had checked (``unfit_fields``), kept until the
    host normalizes them: a file source checks every record just before yielding it, and
    checking its values again took a sixth of a large sync's time in Python. Records are
    matched by identity (a record is immutable); only the latest ``limit`` are kept, and a
    record not found is simply checked again."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.values: dict[int, tuple[StudentRecord, dict[str, Any]]] = {}
        # A source is read in a worker thread while the host normalizes the batch before.
        self.lock = threading.Lock()

    def keep(self, record: StudentRecord, values: dict[str, Any]) -> None:
        with self.lock:
            if len(self.values) >= self.limit:
                del self.values[next(iter(self.values))]  # the oldest
            self.values[id(record)] = (record, values)

    def take(self, record: StudentRecord, source_id: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.values.pop(id(record), None)
        if found is None or found[0] is not record or found[1]["source_id"] != source_id:
            return None
        return found[1]


# Two batches of a sync (it reads 5,000 records at a time): a source checks the records of one
# batch while the host normalizes the batch before.
_checked_records = _CheckedRecords(limit=10_000)


def row_problems(error: ValueError, *, position: int) -> list[RowProblem]:
    """How the ValueError of ``normalize`` is reported: one problem per value that does not fit,
    by the record's position among the source's records (and its id, when that fits)."""
    if not isinstance(error, UnfitRecord):
        return [RowProblem(position, None, str(error))]
    whose = f" (record {error.source_id!r})" if error.source_id else ""
    return [RowProblem(position, item.field, item.message + whose) for item in error.problems]


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
            problems += row_problems(error, position=position)
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


def usage_of(counts: Mapping[str, int]) -> UsageCounts:
    """The usage among a recount's figures (it also counts the report's rows, which are kept
    beside the usage: ``queries.REPORT_ROWS``)."""
    return UsageCounts(**{name: value for name, value in counts.items() if name != REPORT_ROWS})


def refresh_usage(session: Session, *, district_id: int, now: datetime) -> UsageCounts:
    """Recount and store the district's usage; call inside the transaction that changed it."""
    counts = queries.recount_usage(session, district_id=district_id)
    queries.store_usage(session, district_id=district_id, counts=counts, now=now)
    return usage_of(counts)


def counted_records(session: Session, *, district_id: int) -> int:
    """The district's records that count (a person with two counts twice): the active-student
    report's rows, kept with the usage."""
    stored = session.get(DistrictUsage, district_id)
    return 0 if stored is None else stored.counted_records


def usage_mismatch(session: Session, *, district_id: int) -> dict[str, tuple[int, int]]:
    """Counts whose stored value differs from a recount: name -> (stored, recounted)."""
    stored = {
        **asdict(current_usage(session, district_id=district_id)),
        REPORT_ROWS: counted_records(session, district_id=district_id),
    }
    recounted = queries.recount_usage(session, district_id=district_id)
    return {
        name: (stored[name], value) for name, value in recounted.items() if stored[name] != value
    }
