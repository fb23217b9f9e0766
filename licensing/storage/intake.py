"""What a roster source read past (warnings) and could not classify (quarantined rows), kept with
its sync run for the administrator: in ``dataSources``, ``countReview`` and
``licensing report quarantined``.

Sources report these facts among their records (``IntakeWarning``, ``QuarantinedRow``); the host
counts every one, keeps the first ``MAX_KEPT_QUARANTINED`` quarantined rows and
``MAX_KEPT_WARNINGS`` warnings of a run, and keeps them only for the runs someone may look at:
each source's latest finished run, the run whose roster is in force, and a held run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert
from sqlmodel import Session, col, select

from db.models import RosterIntakeIssue, RosterSyncRun, table_of
from plugins.records import IntakeWarning, QuarantinedRow

WARNING = "warning"
QUARANTINED = "quarantined"
MAX_KEPT_QUARANTINED = 10_000
MAX_KEPT_WARNINGS = 1_000
# Statuses of a run whose reading is over (a running one has told nothing yet).
FINISHED = ("applied", "held", "failed", "superseded")
_TEXT_LIMITS = {"file": 255, "column_name": 255, "message": 1000, "source_id": 255}


@dataclass(frozen=True)
class IntakeIssue:
    """One warning or quarantined row as kept and shown."""

    kind: str
    message: str
    file: str | None = None
    line: int | None = None
    column: str | None = None
    rows: int = 1
    source_id: str | None = None


@dataclass
class IntakeTally:
    """A run's intake while its source is read: every fact counted, the first ones kept."""

    warnings: int = 0
    quarantined: int = 0
    kept: list[IntakeIssue] = field(default_factory=list)
    _kept_warnings: int = 0
    _kept_quarantined: int = 0

    def add(self, fact: IntakeWarning | QuarantinedRow) -> None:
        if isinstance(fact, QuarantinedRow):
            self.quarantined += 1
            if self._kept_quarantined < MAX_KEPT_QUARANTINED:
                self._kept_quarantined += 1
                self.kept.append(_issue(QUARANTINED, fact.reason, fact, None, 1, fact.source_id))
            return
        self.warnings += 1
        if self._kept_warnings < MAX_KEPT_WARNINGS:
            self._kept_warnings += 1
            self.kept.append(_issue(WARNING, fact.message, fact, fact.column, fact.rows, None))

    def quarantined_share(self, records: int) -> float:
        """The quarantined rows' share of every row the source gave (records and quarantined)."""
        rows = records + self.quarantined
        return self.quarantined / rows if rows else 0.0


def _issue(
    kind: str,
    message: Any,
    fact: IntakeWarning | QuarantinedRow,
    column: Any,
    rows: Any,
    source_id: Any,
) -> IntakeIssue:
    """The fact as kept: texts made storable (a plugin may send anything), numbers checked."""
    line = fact.line if isinstance(fact.line, int) and fact.line >= 0 else None
    return IntakeIssue(
        kind=kind,
        message=_text(message, "message") or "(no reason given)",
        file=_text(fact.file, "file"),
        line=line if line is None or line <= 2**31 - 1 else None,
        column=_text(column, "column_name"),
        rows=rows if isinstance(rows, int) and 1 <= rows <= 2**31 - 1 else 1,
        source_id=_text(source_id, "source_id"),
    )


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    written = str(value).replace("\x00", "").encode("utf-8", "replace").decode("utf-8").strip()
    limit = _TEXT_LIMITS[name]
    return (written[: limit - 1] + "…" if len(written) > limit else written) or None


def store_intake(session: Session, *, run: RosterSyncRun, tally: IntakeTally) -> None:
    """Keep the run's totals and first issues; drop those of its source's runs nobody will look
    at any more."""
    run.warnings = tally.warnings
    run.quarantined = tally.quarantined
    if tally.kept:
        session.execute(
            insert(table_of(RosterIntakeIssue)),
            [
                {
                    "district_id": run.district_id,
                    "run_id": run.id,
                    "kind": issue.kind,
                    "file": issue.file,
                    "line": issue.line,
                    "column_name": issue.column,
                    "message": issue.message,
                    "rows": issue.rows,
                    "source_id": issue.source_id,
                }
                for issue in tally.kept
            ],
        )
    session.flush()
    forget_old_issues(session, district_id=run.district_id, source=run.source)


def forget_old_issues(session: Session, *, district_id: int, source: str) -> None:
    """Drop the issues of the source's runs nobody looks at: all but its latest finished run,
    the run in force and a held one."""
    runs = select(RosterSyncRun.id).where(
        RosterSyncRun.district_id == district_id, RosterSyncRun.source == source
    )
    keep = {
        run_id
        for run_id in (
            latest_finished_run(session, district_id=district_id, source=source),
            run_in_force(session, district_id=district_id, source=source),
        )
        if run_id is not None
    }
    keep.update(
        run_id
        for run_id in session.exec(runs.where(RosterSyncRun.status == "held")).all()
        if run_id is not None
    )
    old = runs.where(col(RosterSyncRun.id).not_in(keep)) if keep else runs
    session.execute(
        delete(RosterIntakeIssue).where(
            col(RosterIntakeIssue.district_id) == district_id,
            col(RosterIntakeIssue.run_id).in_(old.scalar_subquery()),
        )
    )


def latest_finished_run(session: Session, *, district_id: int, source: str) -> int | None:
    """The source's newest run whose reading is over: the one whose intake ``dataSources``
    shows."""
    return session.exec(
        select(RosterSyncRun.id)
        .where(
            RosterSyncRun.district_id == district_id,
            RosterSyncRun.source == source,
            col(RosterSyncRun.status).in_(FINISHED),
        )
        .order_by(col(RosterSyncRun.id).desc())
    ).first()


def run_in_force(session: Session, *, district_id: int, source: str) -> int | None:
    """The run whose roster the source has now: its last applied one."""
    return session.exec(
        select(RosterSyncRun.id)
        .where(
            RosterSyncRun.district_id == district_id,
            RosterSyncRun.source == source,
            RosterSyncRun.status == "applied",
        )
        .order_by(col(RosterSyncRun.finished_at).desc(), col(RosterSyncRun.id).desc())
    ).first()


def issues(
    session: Session, *, district_id: int, run_id: int, kind: str, limit: int | None = None
) -> list[IntakeIssue]:
    """The run's kept issues of one kind, in the order the source reported them."""
    query = (
        select(RosterIntakeIssue)
        .where(
            RosterIntakeIssue.district_id == district_id,
            RosterIntakeIssue.run_id == run_id,
            RosterIntakeIssue.kind == kind,
        )
        .order_by(col(RosterIntakeIssue.id))
    )
    if limit is not None:
        query = query.limit(limit)
    return [_shown(row) for row in session.exec(query).all()]


def iter_issues(
    session: Session, *, district_id: int, run_ids: list[int], kind: str, batch: int = 1000
) -> Iterator[tuple[int, IntakeIssue]]:
    """(run id, issue) for every kept issue of one kind of these runs, a batch at a time."""
    after = 0
    while True:
        rows = session.exec(
            select(RosterIntakeIssue)
            .where(
                RosterIntakeIssue.district_id == district_id,
                col(RosterIntakeIssue.run_id).in_(run_ids),
                RosterIntakeIssue.kind == kind,
                col(RosterIntakeIssue.id) > after,
            )
            .order_by(col(RosterIntakeIssue.id))
            .limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            yield row.run_id, _shown(row)
        after = rows[-1].id or after


def _shown(row: RosterIntakeIssue) -> IntakeIssue:
    return IntakeIssue(
        kind=row.kind,
        message=row.message,
        file=row.file,
        line=row.line,
        column=row.column_name,
        rows=row.rows,
        source_id=row.source_id,
    )


@dataclass(frozen=True)
class IntakeRun:
    """A sync run whose intake is exported: its source, id and totals."""

    source: str
    run_id: int
    status: str
    warnings: int
    quarantined: int


def intake_runs(
    session: Session, *, district_id: int, source: str | None = None, run_id: int | None = None
) -> list[IntakeRun]:
    """The run ``run_id`` (LookupError when the district has no such run of ``source``), or
    else each source's latest finished run (one source's when ``source`` is given)."""
    if run_id is not None:
        run = session.get(RosterSyncRun, run_id)
        if run is None or run.district_id != district_id or source not in (None, run.source):
            raise LookupError(
                f"There is no sync run {run_id}" + (f" of {source!r}." if source else ".")
            )
        return [_intake_run(run)]
    if source is not None:
        sources = [source]
    else:
        sources = sorted(
            session.exec(
                select(RosterSyncRun.source)
                .where(RosterSyncRun.district_id == district_id)
                .distinct()
            ).all()
        )
    found = []
    for name in sources:
        latest = latest_finished_run(session, district_id=district_id, source=name)
        run = session.get(RosterSyncRun, latest) if latest is not None else None
        if run is not None:
            found.append(_intake_run(run))
    return found


def _intake_run(run: RosterSyncRun) -> IntakeRun:
    assert run.id is not None
    return IntakeRun(run.source, run.id, run.status, run.warnings, run.quarantined)
