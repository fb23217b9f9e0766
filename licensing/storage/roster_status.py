"""How each roster source's syncs have gone, read from ``roster_sync_run`` for the rules'
``roster_status``: the latest sync that finished, when the roster in force was applied, and since
when the syncs fail.

The dashboard reads this on every request, so the usual case (every source's last sync
applied) is one grouped query; the start of a failure is read only for a source whose last sync
failed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select
from sqlmodel import Session

from db.models import RosterSyncRun, table_of
from licensing.domain.rules import RosterSyncFacts, RunOutcome

runs = table_of(RosterSyncRun)
_FINISHED = [outcome.value for outcome in RunOutcome]

# Built once, as the dashboard runs it on every request: per source and outcome, the latest
# finished run of that outcome.
_LATEST_BY_OUTCOME = (
    select(
        runs.c.source,
        runs.c.status,
        func.max(func.coalesce(runs.c.finished_at, runs.c.started_at)).label("latest_at"),
        func.max(runs.c.id).label("latest_id"),
    )
    .where(runs.c.district_id == bindparam("district_id"), runs.c.status.in_(_FINISHED))
    .group_by(runs.c.source, runs.c.status)
)


def roster_sync_facts(session: Session, *, district_id: int) -> dict[str, RosterSyncFacts]:
    """Every source of the district that has finished a sync, by name."""
    rows = session.execute(_LATEST_BY_OUTCOME, {"district_id": district_id}).all()
    by_source: dict[str, dict[RunOutcome, Any]] = {}
    for row in rows:
        by_source.setdefault(row.source, {})[RunOutcome(row.status)] = row
    return {
        source: _facts(session, district_id, source, outcomes)
        for source, outcomes in sorted(by_source.items())
    }


def _latest(outcomes: dict[RunOutcome, Any]) -> tuple[RunOutcome, Any]:
    """The latest outcome; between equal times the later run."""
    return max(outcomes.items(), key=lambda item: (item[1].latest_at, item[1].latest_id))


def _facts(
    session: Session, district_id: int, source: str, outcomes: dict[RunOutcome, Any]
) -> RosterSyncFacts:
    applied = outcomes.get(RunOutcome.APPLIED)
    last_applied_at: datetime | None = applied.latest_at if applied else None
    outcome, latest = _latest(outcomes)
    if outcome is RunOutcome.UNCHANGED:
        # Nothing new does not decide a held sync: it still waits for an administrator.
        decided: dict[RunOutcome, Any] = {
            kind: row for kind, row in outcomes.items() if kind is not RunOutcome.UNCHANGED
        }
        if decided and _latest(decided)[0] is RunOutcome.HELD:
            outcome, latest = _latest(decided)
    if outcome is RunOutcome.APPLIED:
        return RosterSyncFacts(source, outcome, latest.latest_at, last_applied_at=last_applied_at)
    failing_since = None
    if outcome is RunOutcome.FAILED:
        failed = [
            runs.c.district_id == district_id,
            runs.c.source == source,
            runs.c.status == RunOutcome.FAILED.value,
        ]
        if applied is not None:  # failures after it (at the same moment: started after it)
            failed.append(
                or_(
                    runs.c.finished_at > applied.latest_at,
                    and_(runs.c.finished_at == applied.latest_at, runs.c.id > applied.latest_id),
                )
            )
        failing_since = session.execute(
            select(func.min(runs.c.started_at)).where(*failed)
        ).scalar_one_or_none()
    return RosterSyncFacts(
        source,
        outcome,
        latest.latest_at,
        last_applied_at=last_applied_at,
        failing_since=failing_since,
    )
