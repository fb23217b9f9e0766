"""What the ``dataSources`` query shows: each roster source of a district and how its syncs went."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from db.models import RosterRecord, RosterSyncRun
from licensing.domain import rules
from licensing.domain.states import SyncMode, SyncRunStatus
from licensing.settings import RosterSourceConfig
from licensing.storage.intake import (
    FINISHED,
    QUARANTINED,
    WARNING,
    IntakeIssue,
    issues,
    latest_finished_run,
)
from licensing.storage.roster_status import roster_sync_facts

# How many warnings and quarantined rows dataSources shows of each source (all are counted).
INTAKE_SAMPLE = 20


@dataclass(frozen=True)
class DataSourceView:
    name: str
    kind: str
    configured: bool
    roster: rules.RosterStatus
    last_status: SyncRunStatus | None = None
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    records: int | None = None
    active_students: int | None = None
    excluded: dict[str, int] = field(default_factory=dict)
    server_count: int | None = None
    held: bool = False
    intake: IntakeView | None = None  # of the latest finished run

    last_sync_mode: SyncMode | None = None  # the last applied sync's
    last_full_sync_at: datetime | None = None
    held_run: HeldRunView | None = None  # the sync waiting for confirmation, when held


@dataclass(frozen=True)
class HeldRunView:
    """A held sync: which run, since when, and the source's active students before and after."""

    run_id: int
    held_at: datetime | None
    active_before: int | None
    active_after: int | None


@dataclass(frozen=True)
class IntakeView:
    """What one sync run read past and could not classify: totals, and the first of each."""

    run_id: int
    warnings: int
    quarantined: int
    warning_sample: list[IntakeIssue] = field(default_factory=list)
    quarantined_sample: list[IntakeIssue] = field(default_factory=list)


def data_sources(
    session: Session, *, district_id: int, configured: dict[str, RosterSourceConfig]
) -> list[DataSourceView]:
    """Configured sources first (in name order), then any other source that holds records."""
    holding = session.exec(
        select(RosterRecord.source).where(RosterRecord.district_id == district_id).distinct()
    ).all()
    names = sorted(configured) + sorted(set(holding) - set(configured))
    facts = roster_sync_facts(session, district_id=district_id)
    return [
        _view(
            session,
            district_id,
            name,
            configured.get(name),
            rules.roster_status(facts.get(name) or rules.RosterSyncFacts(name)),
        )
        for name in names
    ]


def _view(
    session: Session,
    district_id: int,
    name: str,
    config: RosterSourceConfig | None,
    roster: rules.RosterStatus,
) -> DataSourceView:
    runs = select(RosterSyncRun).where(
        RosterSyncRun.district_id == district_id, RosterSyncRun.source == name
    )
    latest = session.exec(runs.order_by(col(RosterSyncRun.id).desc())).first()
    # The roster in force is the last one applied (a held run applied later than a newer one,
    # as earlier versions allowed, is the one in force).
    applied = session.exec(
        runs.where(RosterSyncRun.status == "applied").order_by(
            col(RosterSyncRun.finished_at).desc(), col(RosterSyncRun.id).desc()
        )
    ).first()
    # A sync that found nothing new changes nothing: a sync held before it is still waiting.
    decisive = session.exec(
        runs.where(RosterSyncRun.status != "unchanged").order_by(col(RosterSyncRun.id).desc())
    ).first()
    last_full = session.exec(
        runs.where(RosterSyncRun.status == "applied", RosterSyncRun.mode == "full").order_by(
            col(RosterSyncRun.finished_at).desc(), col(RosterSyncRun.id).desc()
        )
    ).first()
    kind = config.kind if config else (latest.kind if latest else name)
    return DataSourceView(
        name=name,
        kind=kind,
        configured=config is not None,
        last_status=SyncRunStatus(latest.status) if latest else None,
        last_attempt_at=latest.started_at if latest else None,
        last_success_at=applied.finished_at if applied else None,
        last_error=latest.error
        if latest and latest.status in ("failed", "held", "superseded")
        else None,
        records=applied.records if applied else None,
        active_students=applied.active_students if applied else None,
        excluded=json.loads(applied.excluded) if applied and applied.excluded else {},
        server_count=applied.server_count if applied else None,
        held=bool(decisive and decisive.status == "held"),
        intake=_intake(session, district_id, name, decisive),
        roster=roster,
        last_sync_mode=SyncMode(applied.mode) if applied else None,
        last_full_sync_at=last_full.finished_at if last_full else None,
        held_run=HeldRunView(
            run_id=decisive.id,
            held_at=decisive.finished_at,
            active_before=decisive.active_before,
            active_after=decisive.active_students,
        )
        if decisive is not None and decisive.id is not None and decisive.status == "held"
        else None,
    )


def _intake(
    session: Session, district_id: int, name: str, latest: RosterSyncRun | None
) -> IntakeView | None:
    """The intake of the source's latest finished run (the one before a run still reading)."""
    run = latest
    if run is not None and run.status not in FINISHED:
        run_id = latest_finished_run(session, district_id=district_id, source=name)
        run = session.get(RosterSyncRun, run_id) if run_id is not None else None
    if run is None or run.id is None:
        return None
    return IntakeView(
        run_id=run.id,
        warnings=run.warnings,
        quarantined=run.quarantined,
        warning_sample=issues(
            session, district_id=district_id, run_id=run.id, kind=WARNING, limit=INTAKE_SAMPLE
        )
        if run.warnings
        else [],
        quarantined_sample=issues(
            session, district_id=district_id, run_id=run.id, kind=QUARANTINED, limit=INTAKE_SAMPLE
        )
        if run.quarantined
        else [],
    )
