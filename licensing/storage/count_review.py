"""countReview: groups of counted students an administrator should look at, each with its reason.

The product doc's "License Count Seems Wrong" scenario: graduated seniors still marked active,
accounts from previous years, test accounts, the same person twice. Each group says how many
students it holds and how many licenses fixing it would free. Two more groups come from how the
rosters in force were read: rows their sources could not classify (quarantined, not counted) and
what they read past (warnings). Nothing here changes data: the source system is where students
are fixed, and the next sync shows the effect.

Counting the groups reads every counted record of the district once: at a million students,
seconds. So the figures are kept (``count_review_snapshot``) with the roster's version, the
review's options and the district's day they were counted for, and every worker answers from
them while those hold: a change of the roster raises its version (``db.queries.store_usage``),
a new day or other options count again. Within a day "not modified recently" moves on with the
clock: the few records that crossed its line since are read through an index and added, so the
answer is always the one a count of the roster would give.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, case, false, func, or_, select
from sqlmodel import Session
from sqlmodel import select as select_model

from db.models import CountReviewSnapshot, DistrictUsage, RosterSyncRun
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


@dataclass(frozen=True)
class GroupFigures:
    """A group's figures as counted from the roster, with its examples' record ids (the list of
    examples is the group's first records by id)."""

    students: int
    records: int
    licenses_freed: int
    examples: list[tuple[int, str]]


@dataclass(frozen=True)
class KeptReview:
    """A district's review as counted from its roster at ``roster_version``, for ``inputs``
    (the options and the day), "not modified recently" meaning modified before ``stale_before``.
    """

    roster_version: int
    inputs: str
    stale_before: datetime
    figures: dict[ReviewReason, GroupFigures]


@dataclass(frozen=True)
class ReviewAnswer:
    """The review's groups, and what to keep for later reads (None: what is kept holds)."""

    groups: list[ReviewGroup]
    to_keep: KeptReview | None


# A kept review whose "not modified recently" has moved past more records than this since it
# was counted is counted again rather than brought up to date record by record.
MOST_RECORDS_BROUGHT_UP_TO_DATE = 5_000


def count_review(
    session: Session,
    *,
    district_id: int,
    config: DistrictConfig,
    now: datetime,
    time_zone: str,
) -> ReviewAnswer:
    """Every group that holds at least one counted student, largest saving first.

    The counts come from the review kept for the district (``count_review_snapshot``) while
    its roster, the review's options and the district's day are those it was counted for: no
    read of the roster but the records that became "not modified recently" since. Otherwise
    the roster is read once, and the answer says what to keep (``keep_review``)."""
    today = district_today(now, time_zone)
    inputs = _inputs(config, today)
    stale_before = now - timedelta(days=config.stale_after_days)
    version = _roster_version(session, district_id)
    kept = _kept(session, district_id, version=version, inputs=inputs)
    figures: dict[ReviewReason, GroupFigures] | None = None
    to_keep: KeptReview | None = None
    # A clock set back finds a kept review from its future: counted again.
    if kept is not None and kept.stale_before <= stale_before:
        figures, moved = _brought_up_to_date(session, district_id, kept, stale_before)
        if figures is not None and moved:
            to_keep = KeptReview(version, inputs, stale_before, figures)
    if figures is None:
        figures = _count(session, district_id, config, today, stale_before)
        to_keep = KeptReview(version, inputs, stale_before, figures)
    if to_keep is not None and _roster_version(session, district_id) != version:
        # The roster changed while it was read: the figures are still one roster's answer
        # (on SQLite, one transaction's), but not surely the newest version's.
        to_keep = None
    groups = _assemble(figures, _explanations(config, today))
    return ReviewAnswer(groups + _intake_groups(session, district_id), to_keep)


def keep_review(session: Session, *, district_id: int, review: KeptReview, now: datetime) -> None:
    """Keep ``review`` for the district's later reads, in the caller's transaction (one that
    writes), unless the roster has changed since it was counted."""
    if _roster_version(session, district_id) != review.roster_version:
        return
    text = json.dumps(
        {
            "stale_before": review.stale_before.isoformat(),
            "groups": {
                reason.value: [
                    group.students,
                    group.records,
                    group.licenses_freed,
                    group.examples,
                ]
                for reason, group in review.figures.items()
            },
        }
    )
    stored = session.get(CountReviewSnapshot, district_id)
    if stored is None:
        stored = CountReviewSnapshot(
            district_id=district_id, roster_version=0, inputs="", review="", computed_at=now
        )
        session.add(stored)
    stored.roster_version = review.roster_version
    stored.inputs = review.inputs
    stored.review = text
    stored.computed_at = now


def _inputs(config: DistrictConfig, today: date) -> str:
    """What the review depends on besides the roster: the district's day and the options."""
    options = json.dumps(
        [
            config.last_grade,
            config.stale_after_days,
            config.test_account_patterns,
            config.closed_schools,
        ]
    )
    return f"{today.isoformat()} {hashlib.sha256(options.encode()).hexdigest()}"


def _roster_version(session: Session, district_id: int) -> int:
    usage = session.get(DistrictUsage, district_id, populate_existing=True)
    return 0 if usage is None else usage.roster_version


def _kept(session: Session, district_id: int, *, version: int, inputs: str) -> KeptReview | None:
    stored = session.get(CountReviewSnapshot, district_id, populate_existing=True)
    if stored is None or stored.roster_version != version or stored.inputs != inputs:
        return None
    review = json.loads(stored.review)
    return KeptReview(
        roster_version=stored.roster_version,
        inputs=stored.inputs,
        stale_before=datetime.fromisoformat(review["stale_before"]),
        figures={
            ReviewReason(reason): GroupFigures(
                students, records, freed, [(record_id, text) for record_id, text in examples]
            )
            for reason, (students, records, freed, examples) in review["groups"].items()
        },
    )


def _brought_up_to_date(
    session: Session, district_id: int, kept: KeptReview, stale_before: datetime
) -> tuple[dict[ReviewReason, GroupFigures] | None, bool]:
    """The kept figures with "not modified recently" moved on to ``stale_before``, and whether
    any record moved into it (None when too many did: count again)."""
    if kept.stale_before == stale_before:
        return kept.figures, False
    counted = and_(roster.c.district_id == district_id, counts_against_license(roster))
    moved = session.execute(
        select(roster.c.id, roster.c.source, roster.c.source_id, roster.c.person_key)
        .where(
            counted,
            roster.c.last_modified >= kept.stale_before,
            roster.c.last_modified < stale_before,
        )
        .order_by(roster.c.id)
        .limit(MOST_RECORDS_BROUGHT_UP_TO_DATE + 1)
    ).all()
    if not moved:
        return kept.figures, False
    if len(moved) > MOST_RECORDS_BROUGHT_UP_TO_DATE:
        return None, False
    # Each person with a record that moved: their counted records, those in the group before
    # and those in it now.
    rows = session.execute(
        select(
            func.count(),
            func.coalesce(
                func.sum(case((roster.c.last_modified < kept.stale_before, 1), else_=0)), 0
            ),
            func.coalesce(func.sum(case((roster.c.last_modified < stale_before, 1), else_=0)), 0),
        )
        .where(counted, roster.c.person_key.in_(sorted({row.person_key for row in moved})))
        .group_by(roster.c.person_key)
    ).all()
    people = [tuple(int(value) for value in person) for person in rows]
    reason = ReviewReason.NOT_MODIFIED_RECENTLY
    before = kept.figures.get(reason, GroupFigures(0, 0, 0, []))
    examples = sorted(
        [*before.examples, *((row.id, f"{row.source}:{row.source_id}") for row in moved)]
    )[:EXAMPLES_PER_GROUP]
    after = GroupFigures(
        students=before.students + sum(1 for _records, was, _now in people if was == 0),
        records=before.records + len(moved),
        licenses_freed=before.licenses_freed
        + sum(1 for records, _was, now in people if now == records),
        examples=examples,
    )
    return {**kept.figures, reason: after}, True


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


def _explanations(config: DistrictConfig, today: date) -> dict[ReviewReason, str]:
    graduated_by = last_graduating_class(today)
    patterns = [pattern.lower() for pattern in config.test_account_patterns if pattern]
    return {
        ReviewReason.GRADUATION_YEAR_PASSED: f"Their graduation year ({graduated_by} or "
        "earlier) has passed: graduated seniors still marked active in the source.",
        ReviewReason.GRADE_BEYOND_LAST: "Their grade is beyond the district's last grade "
        f"({config.last_grade}).",
        ReviewReason.NOT_MODIFIED_RECENTLY: "Not changed in their source for more than "
        f"{config.stale_after_days} days: possibly accounts from previous years.",
        ReviewReason.TEST_ACCOUNT: "Their name or username starts like a test account ("
        + ", ".join(patterns)
        + ").",
        ReviewReason.ENROLLMENT_ENDED: "Every enrollment of theirs has ended (the last before "
        f"{today.isoformat()}), but their source still marks them active: students who left, "
        "to make inactive there.",
        ReviewReason.CLOSED_SCHOOL: "Their only school has closed: "
        + ", ".join(config.closed_schools)
        + ".",
        ReviewReason.DUPLICATE_PERSON: "The same person under two ids or in two sources. They "
        "already count once; merge or remove the extra record at its source.",
    }


def _predicates(
    session: Session,
    counted: Any,
    config: DistrictConfig,
    today: date,
    stale_before: datetime,
) -> list[tuple[ReviewReason, Any]]:
    """Which counted records each group holds, as conditions on the roster."""
    graduated_by = last_graduating_class(today)
    patterns = [pattern.lower() for pattern in config.test_account_patterns if pattern]
    beyond = grades_beyond(config.last_grade)
    return [
        (
            ReviewReason.GRADUATION_YEAR_PASSED,
            and_(roster.c.graduation_year.is_not(None), roster.c.graduation_year <= graduated_by),
        ),
        (
            ReviewReason.GRADE_BEYOND_LAST,
            and_(roster.c.grade.is_not(None), roster.c.grade.in_(beyond)),
        ),
        (
            ReviewReason.NOT_MODIFIED_RECENTLY,
            and_(roster.c.last_modified.is_not(None), roster.c.last_modified < stale_before),
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
        ),
        (
            ReviewReason.ENROLLMENT_ENDED,
            and_(roster.c.enrollment_end.is_not(None), roster.c.enrollment_end < today),
        ),
        (
            ReviewReason.CLOSED_SCHOOL,
            _only_closed_schools(session, counted, config.closed_schools),
        ),
    ]


def _assemble(
    figures: dict[ReviewReason, GroupFigures], explanations: dict[ReviewReason, str]
) -> list[ReviewGroup]:
    """The groups that hold records, largest saving first."""
    reasons = list(ReviewReason)
    found = [
        ReviewGroup(
            reason=reason,
            explanation=explanations[reason],
            students=group.students,
            records=group.records,
            licenses_freed=group.licenses_freed,
            examples=[text for _record_id, text in group.examples],
        )
        for reason, group in figures.items()
        if group.records
    ]
    return sorted(
        found,
        key=lambda group: (-group.licenses_freed, -group.students, reasons.index(group.reason)),
    )


def _count(
    session: Session,
    district_id: int,
    config: DistrictConfig,
    today: date,
    stale_before: datetime,
) -> dict[ReviewReason, GroupFigures]:
    """Every group's figures, from one pass over the district's counted records.

    Each counted person's records are counted once (GROUP BY person_key), with how many of them
    fall in each group; the totals over the persons are then summed by the database, so no row
    reaches Python. A person frees a license only when all of their counted records are in the
    group, and is a duplicate when they have more than one counted record. Only the examples of
    a group that holds records are read afterwards."""
    counted = and_(roster.c.district_id == district_id, counts_against_license(roster))
    candidates = _predicates(session, counted, config, today, stale_before)
    in_group = [
        func.sum(case((predicate, 1), else_=0)).label(f"in_{number}")
        for number, (_reason, predicate) in enumerate(candidates)
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
    # Integers on every database (PostgreSQL sums bigints as numeric).
    row = [int(value) for value in session.execute(select(*totals)).one()]
    duplicate_students, duplicate_records = row[0], row[1]
    found = {}
    for number, (reason, predicate) in enumerate(candidates):
        students, held, freed = row[2 + 3 * number : 5 + 3 * number]
        examples = _examples(session, and_(counted, predicate)) if held else []
        found[reason] = GroupFigures(students, held, freed, examples)
    examples = []
    if duplicate_records:
        repeated = (
            select(roster.c.person_key)
            .where(counted)
            .group_by(roster.c.person_key)
            .having(func.count() > 1)
        )
        examples = _examples(session, and_(counted, roster.c.person_key.in_(repeated)))
    found[ReviewReason.DUPLICATE_PERSON] = GroupFigures(
        duplicate_students, duplicate_records, 0, examples
    )
    return found


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


def _examples(session: Session, condition: Any) -> list[tuple[int, str]]:
    rows = session.execute(
        select(roster.c.id, roster.c.source, roster.c.source_id)
        .where(condition)
        .order_by(roster.c.id)
        .limit(EXAMPLES_PER_GROUP)
    ).all()
    return [(row.id, f"{row.source}:{row.source_id}") for row in rows]
