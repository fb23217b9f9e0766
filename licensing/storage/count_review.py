"""countReview: groups of counted students an administrator should look at, each with its reason.

The product doc's "License Count Seems Wrong" scenario: graduated seniors still marked active,
accounts from previous years, test accounts, the same person twice. Each group says how many
students it holds and how many licenses fixing it would free. Two more groups come from how the
rosters in force were read: rows their sources could not classify (quarantined, not counted) and
what they read past (warnings). Nothing here changes data: the source system is where students
are fixed, and the next sync shows the effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, case, false, func, or_, select
from sqlmodel import Session
from sqlmodel import select as select_model

from db.models import RosterSyncRun
from db.rules_sql import counts_against_license
from licensing.domain.rules import district_today
from licensing.settings import DistrictConfig
from licensing.storage.intake import QUARANTINED, WARNING, IntakeIssue, issues, run_in_force
from licensing.storage.student_report import roster

EXAMPLES_PER_GROUP = 5
# School years end in June: from July 1 of a year, that year's class has graduated.
FIRST_MONTH_OF_SCHOOL_YEAR = 7


class ReviewReason(StrEnum):
    GRADUATION_YEAR_PASSED = "GRADUATION_YEAR_PASSED"
    GRADE_BEYOND_LAST = "GRADE_BEYOND_LAST"
    NOT_MODIFIED_RECENTLY = "NOT_MODIFIED_RECENTLY"
    TEST_ACCOUNT = "TEST_ACCOUNT"
    DUPLICATE_PERSON = "DUPLICATE_PERSON"
    CLOSED_SCHOOL = "CLOSED_SCHOOL"
    QUARANTINED_ROWS = "QUARANTINED_ROWS"
    INTAKE_WARNINGS = "INTAKE_WARNINGS"
    ENROLLMENT_ENDED = "ENROLLMENT_ENDED"


@dataclass(frozen=True)
class ReviewGroup:
    reason: ReviewReason
    explanation: str
    students: int
    records: int
    licenses_freed: int
    examples: list[str]


def last_graduating_class(today: date) -> int:
    """The most recent graduation year that has already passed."""
    return today.year if today.month >= FIRST_MONTH_OF_SCHOOL_YEAR else today.year - 1


def grades_beyond(last_grade: str, highest: int = 20) -> list[str]:
    """Grade labels above the district's last grade, as rosters write them ("13", "013")."""
    try:
        last = int(last_grade)
    except ValueError:
        return []
    return [
        label for number in range(last + 1, highest + 1) for label in (str(number), f"{number:02d}")
    ]


def count_review(
    session: Session,
    *,
    district_id: int,
    config: DistrictConfig,
    now: datetime,
    time_zone: str,
) -> list[ReviewGroup]:
    """Every group that holds at least one counted student, largest saving first."""
    today = district_today(now, time_zone)
    counted = and_(roster.c.district_id == district_id, counts_against_license(roster))
    graduated_by = last_graduating_class(today)
    stale_before = now - timedelta(days=config.stale_after_days)
    patterns = [pattern.lower() for pattern in config.test_account_patterns if pattern]
    beyond = grades_beyond(config.last_grade)

    candidates: list[tuple[ReviewReason, Any, str]] = [
        (
            ReviewReason.GRADUATION_YEAR_PASSED,
            and_(roster.c.graduation_year.is_not(None), roster.c.graduation_year <= graduated_by),
            f"Their graduation year ({graduated_by} or earlier) has passed: graduated seniors "
            "still marked active in the source.",
        ),
        (
            ReviewReason.GRADE_BEYOND_LAST,
            and_(roster.c.grade.is_not(None), roster.c.grade.in_(beyond)),
            f"Their grade is beyond the district's last grade ({config.last_grade}).",
        ),
        (
            ReviewReason.NOT_MODIFIED_RECENTLY,
            and_(roster.c.last_modified.is_not(None), roster.c.last_modified < stale_before),
            f"Not changed in their source for more than {config.stale_after_days} days: "
            "possibly accounts from previous years.",
        ),
        (
            ReviewReason.TEST_ACCOUNT,
            or_(
                *(
                    func.lower(func.coalesce(column, "")).like(f"{_escape(pattern)}%", escape="\\")
                    for pattern in patterns
                    for column in (roster.c.username, roster.c.given_name, roster.c.family_name)
                ),
                false(),  # no patterns: nothing matches
            ),
            "Their name or username starts like a test account (" + ", ".join(patterns) + ").",
        ),
        (
            ReviewReason.ENROLLMENT_ENDED,
            and_(roster.c.enrollment_end.is_not(None), roster.c.enrollment_end < today),
            f"Every enrollment of theirs has ended (the last before {today.isoformat()}), but "
            "their source still marks them active: students who left, to make inactive there.",
        ),
    ]
    closed = config.closed_schools
    candidates.append(
        (
            ReviewReason.CLOSED_SCHOOL,
            _only_closed_schools(session, counted, closed),
            "Their only school has closed: " + ", ".join(closed) + ".",
        )
    )
    return _groups(session, counted, candidates) + _intake_groups(session, district_id)


def _intake_groups(session: Session, district_id: int) -> list[ReviewGroup]:
    """The rows the rosters in force left out as unclassifiable, and what their syncs read
    past, each as a group (they free no license: quarantined rows are not counted)."""
    sources = session.exec(
        select_model(RosterSyncRun.source)
        .where(RosterSyncRun.district_id == district_id)
        .distinct()
    ).all()
    totals = {QUARANTINED: 0, WARNING: 0}
    examples: dict[str, list[str]] = {QUARANTINED: [], WARNING: []}
    names: dict[str, list[str]] = {QUARANTINED: [], WARNING: []}
    for source in sorted(sources):
        run_id = run_in_force(session, district_id=district_id, source=source)
        run = session.get(RosterSyncRun, run_id) if run_id is not None else None
        if run is None or run.id is None:
            continue
        for kind, total in ((QUARANTINED, run.quarantined), (WARNING, run.warnings)):
            if not total:
                continue
            totals[kind] += total
            names[kind].append(source)
            room = EXAMPLES_PER_GROUP - len(examples[kind])
            if room > 0:
                examples[kind] += [
                    _example(source, issue)
                    for issue in issues(
                        session, district_id=district_id, run_id=run.id, kind=kind, limit=room
                    )
                ]
    groups = []
    if totals[QUARANTINED]:
        groups.append(
            ReviewGroup(
                reason=ReviewReason.QUARANTINED_ROWS,
                explanation=f"{totals[QUARANTINED]:,} row(s) of "
                + ", ".join(names[QUARANTINED])
                + " could not be classified (no id or no role) and are not counted: if they "
                "are active students, the count is too low. Fix them at their source; "
                "`licensing report quarantined` lists them all.",
                students=0,
                records=totals[QUARANTINED],
                licenses_freed=0,
                examples=examples[QUARANTINED],
            )
        )
    if totals[WARNING]:
        groups.append(
            ReviewGroup(
                reason=ReviewReason.INTAKE_WARNINGS,
                explanation=f"{totals[WARNING]:,} warning(s) from reading "
                + ", ".join(names[WARNING])
                + ": unknown or misspelt columns, unreadable dates or another text encoding. "
                "They did not change the count; dataSources shows them.",
                students=0,
                records=totals[WARNING],
                licenses_freed=0,
                examples=examples[WARNING],
            )
        )
    return groups


def _example(source: str, issue: IntakeIssue) -> str:
    """ "sis:users.csv:7: no role ...": where the row or warning is, and what."""
    where = ":".join(str(part) for part in (issue.file, issue.line) if part is not None)
    return f"{source}:{where}: {issue.message}" if where else f"{source}: {issue.message}"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _groups(
    session: Session, counted: Any, candidates: list[tuple[ReviewReason, Any, str]]
) -> list[ReviewGroup]:
    """Every group found, from one pass over the district's counted records.

    Each counted person's records are counted once (GROUP BY person_key), with how many of them
    fall in each group; the totals over the persons are then summed by the database, so no row
    reaches Python. A person frees a license only when all of their counted records are in the
    group, and is a duplicate when they have more than one counted record. Only the examples of
    a group that holds records are read afterwards."""
    in_group = [
        func.sum(case((predicate, 1), else_=0)).label(f"in_{number}")
        for number, (_reason, predicate, _explanation) in enumerate(candidates)
    ]
    people = (
        select(func.count().label("records"), *in_group)
        .where(counted)
        .group_by(roster.c.person_key)
        .subquery()
    )
    totals: list[Any] = [
        func.count().filter(people.c.records > 1),
        func.coalesce(func.sum(people.c.records).filter(people.c.records > 1), 0),
    ]
    for number in range(len(candidates)):
        records = people.c[f"in_{number}"]
        totals += [
            func.count().filter(records > 0),
            func.coalesce(func.sum(records), 0),
            func.count().filter(records == people.c.records),
        ]
    row = session.execute(select(*totals)).one()
    duplicate_students, duplicate_records = row[0], row[1]
    found = []
    for number, (reason, predicate, explanation) in enumerate(candidates):
        students, records, freed = row[2 + 3 * number : 5 + 3 * number]
        if records:
            examples = _examples(session, and_(counted, predicate))
            found.append(ReviewGroup(reason, explanation, students, records, freed, examples))
    if duplicate_records:
        repeated = (
            select(roster.c.person_key)
            .where(counted)
            .group_by(roster.c.person_key)
            .having(func.count() > 1)
        )
        found.append(
            ReviewGroup(
                reason=ReviewReason.DUPLICATE_PERSON,
                explanation="The same person under two ids or in two sources. They already count "
                "once; merge or remove the extra record at its source.",
                students=duplicate_students,
                records=duplicate_records,
                licenses_freed=0,
                examples=_examples(session, and_(counted, roster.c.person_key.in_(repeated))),
            )
        )
    reasons = list(ReviewReason)
    return sorted(
        found,
        key=lambda group: (-group.licenses_freed, -group.students, reasons.index(group.reason)),
    )


def _only_closed_schools(session: Session, counted: Any, closed: list[str]) -> Any:
    """The records whose every school is closed, as a condition (false when none is closed)."""
    if not closed:
        return false()
    closed_set = set(closed)
    candidates = session.execute(
        select(roster.c.id, roster.c.school, roster.c.schools).where(
            counted,
            or_(roster.c.school.in_(closed), *(roster.c.schools.contains(name) for name in closed)),
        )
    ).all()
    ids = [
        row.id
        for row in candidates
        if set((row.schools or row.school or "").split(",")) <= closed_set
    ]
    return roster.c.id.in_(ids)


def _examples(session: Session, condition: Any) -> list[str]:
    rows = session.execute(
        select(roster.c.source, roster.c.source_id)
        .where(condition)
        .order_by(roster.c.id)
        .limit(EXAMPLES_PER_GROUP)
    ).all()
    return [f"{row.source}:{row.source_id}" for row in rows]
