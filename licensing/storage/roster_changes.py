"""The one path every change to a roster takes, whoever asks for it.

A scheduled or command-line sync, an import of a file, and a switch of local students all stage
the source's whole new roster under a sync run first, then *settle* it here in one transaction
under the district lock:

- a newer applied or held run of the same source supersedes this one (an older run never
  overwrites newer data);
- a change that would stop counting more than the source's ``max_drop_share`` of its active
  students, or whose source quarantined more than its ``max_quarantined_share`` of the rows it
  read (rows that cannot be classified), is held until an administrator confirms it
  (``confirm_held_run``);
- otherwise the staged roster is swapped in, usage is recounted and the alerts re-evaluated;
- either way the audit log records who, which source, the counts before and after and the outcome,
  and the change log tells live subscribers.

Runs that die while staging (a killed process) stop refreshing their heartbeat; ``reap_stale_runs``
marks them failed and removes their staging rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from db import queries
from db.models import DistrictUsage, RosterSyncRun
from db.session import affected_rows, get_existing, lock_district, stored_id
from licensing.domain.audit import AuditAction, AuditOutcome
from licensing.domain.error_codes import ErrorCode
from licensing.domain.states import SyncMode, SyncRunStatus
from licensing.metrics import count_roster_sync
from licensing.problems import Problem
from licensing.settings import RosterSourceConfig, Settings
from licensing.storage.alert_state import record_change
from licensing.storage.audit import record_event
from licensing.storage.district_state import AlertPolicy, reevaluate_alerts
from licensing.storage.district_version import district_changed
from licensing.storage.intake import IntakeTally, forget_old_issues, store_intake
from licensing.storage.roster import (
    UsageCounts,
    current_usage,
    normalize_all,
    refresh_usage,
    usage_of,
)
from plugins.records import INTAKE_FACTS, IntakeWarning, QuarantinedRow, StudentRecord

# A run's status as stored (plain text, compared in SQL).
RUNNING = SyncRunStatus.RUNNING.value
APPLIED = SyncRunStatus.APPLIED.value
HELD = SyncRunStatus.HELD.value
FAILED = SyncRunStatus.FAILED.value
SUPERSEDED = SyncRunStatus.SUPERSEDED.value
UNCHANGED = SyncRunStatus.UNCHANGED.value  # the source had nothing new: the roster in force is kept
DISCARDED = SyncRunStatus.DISCARDED.value  # held, then not applied by an administrator's choice
# Runs whose staging rows are still needed: being staged, or waiting for confirmation.
STAGING_KEPT = (RUNNING, HELD)
# Runs that describe the roster in force or a roster waiting to be: newer ones supersede older.
DECIDED = (APPLIED, HELD)

# What a run's staging rows are: the source's whole roster, or changes to the roster it has.
FULL = SyncMode.FULL.value
DELTA = SyncMode.DELTA.value

SYNC_ACTION = AuditAction.ROSTER_SYNC
IMPORT_ACTION = AuditAction.ROSTER_IMPORT
CONFIRM_ACTION = AuditAction.ROSTER_SYNC_CONFIRM
DISCARD_ACTION = AuditAction.ROSTER_SYNC_DISCARD
# Followed by anything that shows how a source's syncs went (dataSources); a change of the
# counts is also written on the license topic, by the alert re-evaluation.
ROSTER_TOPIC = "roster_sync"
DEFAULT_MAX_DROP_SHARE: float = RosterSourceConfig.model_fields["max_drop_share"].default
DEFAULT_MAX_QUARANTINED_SHARE: float = RosterSourceConfig.model_fields[
    "max_quarantined_share"
].default


@dataclass(frozen=True)
class RosterGuard:
    """What settling a change needs besides the change: the hold's limit and what the alerts
    depend on."""

    max_drop_share: float
    alerts: AlertPolicy
    max_quarantined_share: float = DEFAULT_MAX_QUARANTINED_SHARE


@dataclass(frozen=True)
class SyncOutcome:
    source: str
    status: str  # applied, held, failed, superseded, unchanged
    run_id: int | None
    records: int = 0
    active_before: int | None = None
    active_after: int | None = None
    removed_active: int | None = None
    excluded: dict[str, int] = field(default_factory=dict)
    server_count: int | None = None
    problem: Problem | None = None
    used_before: int | None = None  # the district's count before and after (or unchanged)
    used_after: int | None = None
    warnings: int = 0  # what the source read past, and the rows it could not classify
    quarantined: int = 0
    note: str | None = None  # what an unchanged source said (nothing new, and why)
    mode: str = FULL  # full (the whole roster) or delta (changes to the roster it had)


class RunAbandoned(Exception):
    """The run was declared dead (no heartbeat for too long) while it was still staging."""


# For imports outside a configured service (tests, the demo): no synced roster sources.
DEFAULT_GUARD = RosterGuard(DEFAULT_MAX_DROP_SHARE, AlertPolicy())


def guard_for(settings: Settings, *, slug: str, source: str) -> RosterGuard:
    """The guard of one source of one district: its own shares when configured."""
    config = settings.district(slug).roster_sources.get(source)
    return RosterGuard(
        max_drop_share=config.max_drop_share if config else DEFAULT_MAX_DROP_SHARE,
        alerts=AlertPolicy.from_settings(settings),
        max_quarantined_share=(
            config.max_quarantined_share if config else DEFAULT_MAX_QUARANTINED_SHARE
        ),
    )


def start_run(
    session: Session, *, district_id: int, source: str, kind: str, actor: str, now: datetime
) -> RosterSyncRun:
    run = RosterSyncRun(
        district_id=district_id,
        source=source,
        kind=kind,
        status=RUNNING,
        started_at=now,
        heartbeat_at=now,
        actor=actor,
    )
    session.add(run)
    session.flush()
    district_changed(session, district_id)  # dataSources shows the run from its start
    return run


def stage_rows(
    session: Session, *, run_id: int, rows: Sequence[Mapping[str, Any]], now: datetime
) -> None:
    """Add a batch to a running run's staging rows and refresh its heartbeat.

    The heartbeat is a conditional UPDATE: it fails (``RunAbandoned``) once the run was marked
    failed, and on PostgreSQL its row lock orders it with ``reap_stale_runs``, so no staging row
    is ever left behind by a run that was reaped.
    """
    if not _still_running(session, run_id=run_id, now=now):
        raise RunAbandoned(run_id)
    if rows:
        queries.insert_staging_rows(session, run_id=run_id, rows=rows)


def staging_loaded(session: Session) -> None:
    """Say that a run's rows are all staged, before it is settled: on PostgreSQL the planner
    gets the staging table's statistics (in a transaction of its own when it can, as the
    statistics' lock is held until commit)."""
    queries.analyze_staging(session)


def _still_running(session: Session, *, run_id: int, now: datetime) -> bool:
    result = session.execute(
        update(RosterSyncRun)
        .where(col(RosterSyncRun.id) == run_id, col(RosterSyncRun.status) == RUNNING)
        .values(heartbeat_at=now)
    )
    return affected_rows(result) == 1


def settle_run(
    session: Session,
    *,
    run_id: int,
    action: AuditAction,
    actor: str,
    now: datetime,
    guard: RosterGuard,
    records: int,
    other_role: int = 0,
    server_count: int | None = None,
    intake: IntakeTally | None = None,
    cursor: str | None = None,
) -> SyncOutcome:
    """Hold, apply or supersede a run whose staging rows are the source's whole new roster, or
    (a run marked ``delta``) changes to the roster the source has; ``intake`` is what the source
    read past and could not classify, kept with the run."""
    intake = intake or IntakeTally()
    run = get_existing(session, RosterSyncRun, run_id)
    lock_district(session, run.district_id)
    if not _still_running(session, run_id=run_id, now=now):  # reaped while it staged
        session.refresh(run)
        return _outcome(
            run, {}, Problem(ErrorCode.SOURCE_FAILED, run.error or "The sync was stopped.")
        )
    run.cursor = cursor
    run.warnings = intake.warnings
    run.quarantined = intake.quarantined
    if run.mode == DELTA:
        outcome = _settle_delta(
            session, run, action=action, actor=actor, now=now, guard=guard, intake=intake
        )
        store_intake(session, run=run, tally=intake)
        return outcome
    statistics = queries.staged_statistics(session, run_id=run_id)
    before, removed = queries.removed_active_people(
        session, district_id=run.district_id, source=run.source, run_id=run_id
    )
    excluded = {
        "staff": statistics["staff"],
        "inactive": statistics["inactive"],
        "disabled": statistics["disabled"],
        "duplicate": statistics["duplicate"],
        "other_role": other_role,
    }
    run.records = records
    run.active_students = statistics["active_students"]
    run.active_before = before
    run.removed_active = removed
    run.excluded = json.dumps(excluded, sort_keys=True)
    run.server_count = server_count
    run.warnings = intake.warnings
    run.quarantined = intake.quarantined
    newer = _newer_decided_run(session, run)
    if newer is not None:
        outcome = _supersede(session, run, newer, actor=actor, action=action, now=now)
    else:
        reasons = _hold_reasons(run, intake, guard)
        if reasons:
            outcome = _hold(session, run, excluded, reasons, guard=guard, action=action, now=now)
        else:
            outcome = _apply(
                session, run, excluded, actor=actor, action=action, now=now, guard=guard
            )
    store_intake(session, run=run, tally=intake)
    return outcome


def _hold_reasons(run: RosterSyncRun, intake: IntakeTally, guard: RosterGuard) -> list[str]:
    """Why the run waits for a person: too many active students dropped, too many rows
    quarantined (none: it is applied)."""
    reasons = []
    before, removed = run.active_before, run.removed_active or 0
    if before and removed / before > guard.max_drop_share:
        reasons.append(
            f"This change would stop counting {removed} of the {before} active students of "
            f"{run.source!r} (more than {guard.max_drop_share:.0%})."
        )
    share = intake.quarantined_share(run.records)
    if intake.quarantined and share > guard.max_quarantined_share:
        rows = run.records + intake.quarantined
        reasons.append(
            f"{intake.quarantined:,} of the {rows:,} rows {run.source!r} gave ({_percent(share)}) "
            "could not be classified (no id or no role) and were quarantined, more than "
            f"{_percent(guard.max_quarantined_share)}: they would not count. See them in "
            "dataSources or with `licensing report quarantined`."
        )
    return reasons


def _percent(share: float) -> str:
    """0.2 -> "20%", 0.015 -> "1.5%", 0.0196 -> "1.96%"."""
    return f"{share * 100:.2f}".rstrip("0").rstrip(".") + "%"


def removal_row(source_id: str) -> dict[str, Any]:
    """The staging row of a delta that removes the source's record ``source_id``."""
    row: dict[str, Any] = dict.fromkeys(queries.ROW_COLUMNS)
    row.update(
        source_id=source_id,
        person_key=source_id,
        role="removed",
        lifecycle="removed",
        enabled=False,
        removed=True,
    )
    return row


def mark_delta(session: Session, *, run_id: int) -> None:
    """Say that a running run stages changes, not a whole roster (its source returned a
    ``RosterDelta``)."""
    session.execute(update(RosterSyncRun).where(col(RosterSyncRun.id) == run_id).values(mode=DELTA))


@dataclass(frozen=True)
class _SourceFigures:
    """A source's roster as its last applied sync described it (what dataSources shows)."""

    active: int
    records: int
    excluded: dict[str, int]
    server_count: int | None


def last_applied_run(
    session: Session,
    *,
    district_id: int,
    source: str,
    before: int | None = None,
    mode: str | None = None,
) -> RosterSyncRun | None:
    """The run whose roster is in force for the source (the last applied), optionally among the
    runs older than run ``before``, or the last applied of a ``mode`` (full or delta)."""
    query = select(RosterSyncRun).where(
        RosterSyncRun.district_id == district_id,
        RosterSyncRun.source == source,
        RosterSyncRun.status == APPLIED,
    )
    if before is not None:
        query = query.where(col(RosterSyncRun.id) < before)
    if mode is not None:
        query = query.where(RosterSyncRun.mode == mode)
    return session.exec(
        query.order_by(col(RosterSyncRun.finished_at).desc(), col(RosterSyncRun.id).desc())
    ).first()


def _source_figures(session: Session, run: RosterSyncRun) -> _SourceFigures:
    last = last_applied_run(session, district_id=run.district_id, source=run.source)
    if last is not None and last.active_students is not None:
        return _SourceFigures(
            active=last.active_students,
            records=last.records,
            excluded=json.loads(last.excluded or "{}"),
            server_count=last.server_count,
        )
    # No sync described the roster (it was loaded otherwise): count it once.
    split, people = queries.source_split(session, district_id=run.district_id, source=run.source)
    excluded = {
        "staff": split.staff,
        "inactive": split.inactive,
        "disabled": split.disabled,
        "duplicate": split.counted - people,
        "other_role": 0,
    }
    return _SourceFigures(
        active=people, records=split.records, excluded=excluded, server_count=None
    )


def _settle_delta(
    session: Session,
    run: RosterSyncRun,
    *,
    action: AuditAction,
    actor: str,
    now: datetime,
    guard: RosterGuard,
    intake: IntakeTally,
) -> SyncOutcome:
    """Settle changes to the source's roster from the changed records alone: the figures a full
    sync would store (people counted, records, exclusions) are those of the last applied sync
    adjusted by what the changes replace and add, and the hold looks at the people the changes
    would stop counting, exactly as for a whole roster."""
    run_id = stored_id(run)
    queries.note_previous_people(
        session, district_id=run.district_id, source=run.source, run_id=run_id
    )
    base = _source_figures(session, run)
    effect = queries.delta_effect(
        session, district_id=run.district_id, source=run.source, run_id=run_id
    )
    active = base.active - effect.people_lost + effect.people_gained
    old, new = effect.replaced, effect.added
    excluded = {
        "staff": base.excluded.get("staff", 0) - old.staff + new.staff,
        "inactive": base.excluded.get("inactive", 0) - old.inactive + new.inactive,
        "disabled": base.excluded.get("disabled", 0) - old.disabled + new.disabled,
        "duplicate": base.excluded.get("duplicate", 0)
        + (new.counted - old.counted)
        - (active - base.active),
        # Guardians are never stored: their number is the last full sync's.
        "other_role": base.excluded.get("other_role", 0),
    }
    run.records = base.records - old.records + new.records
    run.active_students = active
    run.active_before = base.active
    run.removed_active = effect.people_lost
    run.excluded = json.dumps(excluded, sort_keys=True)
    run.server_count = base.server_count
    newer = _newer_decided_run(session, run)
    if newer is not None:
        return _supersede(session, run, newer, actor=actor, action=action, now=now)
    reasons = _hold_reasons(run, intake, guard)
    if reasons:
        return _hold(session, run, excluded, reasons, guard=guard, action=action, now=now)
    return _apply(session, run, excluded, actor=actor, action=action, now=now, guard=guard)


def confirm_held_run(
    session: Session,
    *,
    district_id: int,
    source: str,
    run_id: int | None,
    actor: str,
    now: datetime,
    guard: RosterGuard,
) -> SyncOutcome:
    """Apply a held run as an administrator decided, if it is still the newest of its source.

    ``run_id`` names the run that was reviewed; without it, the source's held run is taken. The
    check runs under the district lock, so a sync settling at the same moment comes before or
    after, never in between.
    """
    lock_district(session, district_id)
    if run_id is not None:
        run = session.get(RosterSyncRun, run_id)
        if run is None or run.district_id != district_id or run.source != source:
            return _unknown_run(source, run_id)
    else:
        run = session.exec(
            select(RosterSyncRun)
            .where(
                RosterSyncRun.district_id == district_id,
                RosterSyncRun.source == source,
                RosterSyncRun.status == HELD,
            )
            .order_by(col(RosterSyncRun.id).desc())
        ).first()
        if run is None:
            return _refused(
                source, None, Problem(ErrorCode.NOTHING_HELD, f"No sync of {source!r} is waiting.")
            )
    if run.status == HELD:
        newer = _newer_decided_run(session, run)
        if newer is not None:  # left held by an earlier version: supersede it now
            _supersede(session, run, newer, actor=actor, action=CONFIRM_ACTION, now=now)
    if run.status == SUPERSEDED:
        return _refused(
            source,
            run.id,
            Problem(
                ErrorCode.SYNC_SUPERSEDED,
                f"Sync run {run.id} of {source!r} was superseded by a newer sync and cannot be "
                f"applied; nothing was changed. {run.error or ''}".strip(),
                "runId",
            ),
        )
    if run.status != HELD:
        return _not_held(source, run)
    excluded = json.loads(run.excluded or "{}")
    outcome = _apply(
        session, run, excluded, actor=actor, action=CONFIRM_ACTION, now=now, guard=guard
    )
    # The run applied is now the one in force: older runs' intake is no longer looked at.
    forget_old_issues(session, district_id=district_id, source=source)
    return outcome


def _unknown_run(source: str, run_id: int) -> SyncOutcome:
    return _refused(
        source,
        run_id,
        Problem(ErrorCode.UNKNOWN_RUN, f"There is no sync run {run_id} of {source!r}.", "runId"),
    )


def _not_held(source: str, run: RosterSyncRun) -> SyncOutcome:
    return _refused(
        source,
        run.id,
        Problem(
            ErrorCode.NOT_HELD,
            f"Sync run {run.id} of {source!r} is {run.status}, not waiting for confirmation.",
            "runId",
        ),
    )


def discard_held_run(
    session: Session,
    *,
    district_id: int,
    source: str,
    run_id: int,
    actor: str,
    now: datetime,
    guard: RosterGuard,
) -> SyncOutcome:
    """Drop a held run as an administrator decided: the roster in force stays, its staging rows
    go, and the source's next sync is judged afresh. Refused unless ``run_id`` is the source's
    held run; under the district lock, like confirming."""
    lock_district(session, district_id)
    run = session.get(RosterSyncRun, run_id)
    if run is None or run.district_id != district_id or run.source != source:
        return _unknown_run(source, run_id)
    if run.status == HELD and _newer_decided_run(session, run) is not None:
        return _refused(
            source,
            run.id,
            Problem(
                ErrorCode.SYNC_SUPERSEDED,
                f"Sync run {run.id} of {source!r} was superseded by a newer sync; nothing was "
                "changed.",
                "runId",
            ),
        )
    if run.status != HELD:
        return _not_held(source, run)
    run.status = DISCARDED
    queries.discard_staging(session, run_id=stored_id(run))
    used = current_usage(session, district_id=district_id).active_students
    _record(
        session,
        run,
        action=DISCARD_ACTION,
        actor=actor,
        outcome=DISCARDED,
        now=now,
        used=(used, used),
        # Nothing changed: the source keeps the active students it had.
        extra={"source_active": run.active_before},
    )
    # Nothing waits any more: the alert a held sync raised ends if nothing else keeps it.
    reevaluate_alerts(session, district_id=district_id, now=now, policy=guard.alerts)
    return _outcome(run, json.loads(run.excluded or "{}"), None, used=(used, used))


def apply_roster(
    session: Session,
    *,
    district_id: int,
    source: str,
    records: Iterable[StudentRecord | Mapping[str, Any]],
    replace: bool,
    now: datetime,
    actor: str = "system",
    kind: str = "import",
    guard: RosterGuard = DEFAULT_GUARD,
    action: AuditAction = IMPORT_ACTION,
) -> SyncOutcome:
    """Apply records held in memory (an import) through the same run, hold and audit as a sync.

    With ``replace`` the records become the source's whole roster; otherwise they are added or
    updated by id and the rest of the source's roster is kept. Bad records raise
    ``RosterFileError`` before anything changes. ``kind`` names the plugin that read the records
    (a metric label, so never a district's own name for a source).
    """
    intake = IntakeTally()
    people = []
    for record in records:
        if isinstance(record, IntakeWarning | QuarantinedRow):
            intake.add(record)
        elif not isinstance(record, INTAKE_FACTS):  # a server's count means nothing here
            people.append(record)
    rows = normalize_all(people, district_id=district_id, source=source)
    lock_district(session, district_id)
    run = start_run(
        session, district_id=district_id, source=source, kind=kind, actor=actor, now=now
    )
    stage_rows(session, run_id=stored_id(run), rows=[_staging_row(row) for row in rows], now=now)
    if not replace:
        queries.stage_current_roster(
            session, district_id=district_id, source=source, run_id=stored_id(run)
        )
    staging_loaded(session)
    return settle_run(
        session,
        run_id=stored_id(run),
        action=action,
        actor=actor,
        now=now,
        guard=guard,
        records=len(rows),
        intake=intake,
    )


def apply_enabled_switch(
    session: Session,
    *,
    district_id: int,
    source: str,
    kind: str,
    ids: list[str],
    enabled: bool,
    action: AuditAction,
    actor: str,
    now: datetime,
    guard: RosterGuard,
) -> tuple[int, SyncOutcome]:
    """Switch people of a source on or off by id, as a change of its whole roster: (how many
    changed, the outcome)."""
    lock_district(session, district_id)
    run = start_run(
        session, district_id=district_id, source=source, kind=kind, actor=actor, now=now
    )
    queries.stage_current_roster(
        session, district_id=district_id, source=source, run_id=stored_id(run)
    )
    changed = queries.set_staged_enabled(session, run_id=stored_id(run), ids=ids, enabled=enabled)
    staging_loaded(session)
    records = queries.staged_statistics(session, run_id=stored_id(run))["records"]
    outcome = settle_run(
        session,
        run_id=stored_id(run),
        action=action,
        actor=actor,
        now=now,
        guard=guard,
        records=records,
    )
    return changed, outcome


def fail_run(
    session: Session,
    *,
    run_id: int,
    problem: Problem,
    records: int,
    actor: str,
    now: datetime,
    intake: IntakeTally | None = None,
    alerts: AlertPolicy | None = None,
) -> None:
    """Mark a running run failed and drop its staging rows (nothing of it is applied); what
    the source read past before it failed is kept with the run. With the alert policy, bring the
    district's alerts in line at once (a first sync that failed raises SYNC_FAILING in the same
    transaction)."""
    run = session.get(RosterSyncRun, run_id)
    if run is None:
        return
    lock_district(session, run.district_id)  # before the audit entry writes the district's row
    if not _still_running(session, run_id=run_id, now=now):
        return  # already reaped: it was recorded then
    run.records = records
    _fail(session, run, problem.message, actor=actor, now=now)
    store_intake(session, run=run, tally=intake or IntakeTally())
    if alerts is not None:
        reevaluate_alerts(session, district_id=run.district_id, now=now, policy=alerts)


def mark_unchanged(
    session: Session,
    *,
    run_id: int,
    note: str,
    actor: str,
    now: datetime,
    guard: RosterGuard,
) -> SyncOutcome:
    """Settle a run whose source had nothing new: the roster in force stays, and the source is
    healthy again (a failure before it no longer makes the numbers stale)."""
    run = get_existing(session, RosterSyncRun, run_id)
    lock_district(session, run.district_id)
    if not _still_running(session, run_id=run_id, now=now):  # reaped meanwhile
        session.refresh(run)
        return _outcome(
            run, {}, Problem(ErrorCode.SOURCE_FAILED, run.error or "The sync was stopped.")
        )
    queries.discard_staging(session, run_id=run_id)
    used = current_usage(session, district_id=run.district_id).active_students
    run.status = UNCHANGED
    run.finished_at = now
    run.records = 0
    run.error = note[:4000]
    reevaluate_alerts(
        session,
        district_id=run.district_id,
        now=now,
        policy=guard.alerts,
    )
    _record(
        session,
        run,
        action=SYNC_ACTION,
        actor=actor,
        outcome=UNCHANGED,
        now=now,
        used=(used, used),
        detail=f"{run.source}: {note}",
    )
    count_roster_sync(outcome=UNCHANGED, plugin=run.kind)
    outcome = _outcome(run, {}, None, used=(used, used))
    return replace(outcome, note=note)


def reap_stale_runs(
    session: Session,
    *,
    now: datetime,
    stale_after: timedelta,
    actor: str,
    district_id: int | None = None,
    source: str | None = None,
) -> int:
    """Mark failed every running run without a heartbeat for ``stale_after`` (its process died),
    and remove the staging rows of every run that no longer needs them. Returns the runs reaped."""
    cutoff = now - stale_after
    last_sign = func.coalesce(RosterSyncRun.heartbeat_at, RosterSyncRun.started_at)
    # Each run's district is locked before the run is claimed and failed (a settling run holds
    # that lock while it writes the run and the district's rows); in district order, so two
    # reapers take the locks in the same order.
    query = (
        select(RosterSyncRun.id, RosterSyncRun.district_id)
        .where(RosterSyncRun.status == RUNNING, last_sign < cutoff)
        .order_by(col(RosterSyncRun.district_id), col(RosterSyncRun.id))
    )
    if district_id is not None:
        query = query.where(RosterSyncRun.district_id == district_id)
    if source is not None:
        query = query.where(RosterSyncRun.source == source)
    reaped = 0
    for run_id, run_district_id in session.exec(query).all():
        lock_district(session, run_district_id)
        # Conditional, so a run that staged a batch in the meantime is left alone.
        claimed = session.execute(
            update(RosterSyncRun)
            .where(col(RosterSyncRun.id) == run_id, col(RosterSyncRun.status) == RUNNING)
            .where(last_sign < cutoff)
            .values(status=FAILED)
        )
        if affected_rows(claimed) != 1:
            continue
        run = get_existing(session, RosterSyncRun, run_id)  # claimed just above
        session.refresh(run)
        last = run.heartbeat_at or run.started_at
        message = (
            f"The sync of {run.source!r} stopped without finishing: no sign of life since "
            f"{last:%Y-%m-%d %H:%M:%S %Z} (more than {int(stale_after.total_seconds())} s). "
            "Its process was probably stopped; nothing was applied."
        )
        _fail(session, run, message, actor=actor, now=now)
        reaped += 1
    queries.discard_unneeded_staging(session, keep_statuses=STAGING_KEPT, district_id=district_id)
    return reaped


def _staging_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in queries.ROW_COLUMNS}


def _newer_decided_run(session: Session, run: RosterSyncRun) -> RosterSyncRun | None:
    return session.exec(
        select(RosterSyncRun)
        .where(
            RosterSyncRun.district_id == run.district_id,
            RosterSyncRun.source == run.source,
            col(RosterSyncRun.id) > run.id,
            col(RosterSyncRun.status).in_(DECIDED),
        )
        .order_by(col(RosterSyncRun.id).desc())
    ).first()


def _supersede_older_held(session: Session, run: RosterSyncRun, *, now: datetime) -> None:
    for older in session.exec(
        select(RosterSyncRun).where(
            RosterSyncRun.district_id == run.district_id,
            RosterSyncRun.source == run.source,
            RosterSyncRun.status == HELD,
            col(RosterSyncRun.id) < run.id,
        )
    ).all():
        older.status = SUPERSEDED
        older.error = f"Superseded by sync run {run.id} ({run.status})."
        older.finished_at = older.finished_at or now
        queries.discard_staging(session, run_id=stored_id(older))


def _supersede(
    session: Session,
    run: RosterSyncRun,
    newer: RosterSyncRun,
    *,
    actor: str,
    action: AuditAction,
    now: datetime,
) -> SyncOutcome:
    used = current_usage(session, district_id=run.district_id).active_students
    run.status = SUPERSEDED
    run.finished_at = now
    run.error = f"Superseded by sync run {newer.id} ({newer.status})."
    queries.discard_staging(session, run_id=stored_id(run))
    message = (
        f"Sync run {run.id} of {run.source!r} was superseded by the newer sync run {newer.id} "
        f"({newer.status}); nothing of it was applied."
    )
    _record(
        session,
        run,
        action=action,
        actor=actor,
        outcome=SUPERSEDED,
        now=now,
        used=(used, used),
        detail=message,
    )
    excluded = json.loads(run.excluded or "{}")
    return _outcome(run, excluded, Problem(ErrorCode.SYNC_SUPERSEDED, message), used=(used, used))


def _hold(
    session: Session,
    run: RosterSyncRun,
    excluded: dict[str, int],
    reasons: list[str],
    *,
    guard: RosterGuard,
    action: AuditAction,
    now: datetime,
) -> SyncOutcome:
    run.status = HELD
    run.finished_at = now
    _supersede_older_held(session, run, now=now)
    used = current_usage(session, district_id=run.district_id).active_students
    message = (
        " ".join(reasons) + f" It is held as sync run {run.id}: apply it with "
        f"`licensing sync confirm --source {run.source} --run {run.id}` "
        "or the confirmRosterSync mutation."
    )
    run.error = message
    _record(
        session,
        run,
        action=action,
        actor=run.actor,
        outcome=HELD,
        now=now,
        used=(used, used),
        detail=message,
    )
    # A held roster is not the source's: SYNC_FAILING says so at once.
    reevaluate_alerts(session, district_id=run.district_id, now=now, policy=guard.alerts)
    count_roster_sync(outcome=HELD, plugin=run.kind)
    return _outcome(run, excluded, Problem(ErrorCode.SYNC_HELD, message), used=(used, used))


def _apply(
    session: Session,
    run: RosterSyncRun,
    excluded: dict[str, int],
    *,
    actor: str,
    action: AuditAction,
    now: datetime,
    guard: RosterGuard,
) -> SyncOutcome:
    before: UsageCounts = current_usage(session, district_id=run.district_id)
    run_id = stored_id(run)
    if run.mode == DELTA:
        after, change = _apply_delta_rows(session, run, before, now=now)
    else:
        change = _reconciled(session, run)
        queries.swap_in_staged_roster(
            session, district_id=run.district_id, source=run.source, run_id=run_id
        )
        after = refresh_usage(session, district_id=run.district_id, now=now)
    run.status = APPLIED
    run.finished_at = now
    run.error = None
    _supersede_older_held(session, run, now=now)
    reevaluate_alerts(session, district_id=run.district_id, now=now, policy=guard.alerts)
    used = (before.active_students, after.active_students)
    _record(
        session,
        run,
        action=action,
        actor=actor,
        outcome=APPLIED,
        now=now,
        used=used,
        detail=change.detail,
        extra=change.figures,
    )
    count_roster_sync(outcome=APPLIED, plugin=run.kind)
    return _outcome(run, excluded, None, used=used)


@dataclass(frozen=True)
class _Change:
    """What the audit event says of an applied run besides the counts."""

    detail: str | None
    figures: dict[str, Any]


def _apply_delta_rows(
    session: Session, run: RosterSyncRun, before: UsageCounts, *, now: datetime
) -> tuple[UsageCounts, _Change]:
    """Apply a delta's rows in place and adjust the district's counts by the people it touched
    (counted before and after the change), so nothing is recounted but them."""
    run_id = stored_id(run)
    upserts, removals = queries.staged_change_counts(session, run_id=run_id)
    people = queries.delta_people(run_id)
    stored = session.get(DistrictUsage, run.district_id)
    touched_before = queries.recount_usage(session, district_id=run.district_id, people=people)
    queries.apply_staged_delta(
        session, district_id=run.district_id, source=run.source, run_id=run_id
    )
    touched_after = queries.recount_usage(session, district_id=run.district_id, people=people)
    queries.discard_staging(session, run_id=run_id)
    if stored is None:  # no counts kept yet: count once
        after = refresh_usage(session, district_id=run.district_id, now=now)
    else:
        counts = {**asdict(before), queries.REPORT_ROWS: stored.counted_records}
        for name, value in touched_after.items():
            if name != "devices":
                counts[name] += value - touched_before[name]
        queries.store_usage(session, district_id=run.district_id, counts=counts, now=now)
        after = usage_of(counts)
    detail = (
        f"{run.source}: delta of {upserts + removals} change(s): {upserts} record(s) added or "
        f"updated, {removals} removed."
    )
    return after, _Change(detail, {"mode": DELTA, "upserts": upserts, "removals": removals})


def _reconciled(session: Session, run: RosterSyncRun) -> _Change:
    """A full sync after deltas compares the whole roster with the one the deltas kept: the
    audit event says how many records it corrected."""
    last = last_applied_run(session, district_id=run.district_id, source=run.source, before=run.id)
    if last is None or last.mode != DELTA:
        return _Change(None, {"mode": FULL})
    found = queries.staged_differences(
        session, district_id=run.district_id, source=run.source, run_id=stored_id(run)
    )
    if found.total == 0:
        detail = (
            f"{run.source}: full sync after delta syncs: the roster the deltas kept matched "
            "the source exactly; nothing to correct."
        )
    else:
        detail = (
            f"{run.source}: full sync corrected {found.total} record(s) that the delta syncs "
            f"had not delivered ({found.added} missing, {found.removed} no longer in the "
            f"source, {found.changed} changed)."
        )
    return _Change(detail, {"mode": FULL, "corrected": found.total})


def _fail(session: Session, run: RosterSyncRun, message: str, *, actor: str, now: datetime) -> None:
    queries.discard_staging(session, run_id=stored_id(run))
    run.status = FAILED
    run.finished_at = now
    run.error = message[:4000]
    used = current_usage(session, district_id=run.district_id).active_students
    _record(
        session,
        run,
        action=SYNC_ACTION,
        actor=actor,
        outcome=FAILED,
        now=now,
        used=(used, used),
        detail=f"{run.source}: {message}",
    )
    count_roster_sync(outcome=FAILED, plugin=run.kind)


def _record(
    session: Session,
    run: RosterSyncRun,
    *,
    action: AuditAction,
    actor: str,
    outcome: str,
    now: datetime,
    used: tuple[int, int],
    detail: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """The audit event and the change event every settled run writes."""
    record_event(
        session,
        district_id=run.district_id,
        actor=actor,
        action=action,
        outcome=AuditOutcome(outcome),
        now=now,
        old={"used": used[0], "source_active": run.active_before},
        new={
            "used": used[1],
            "source_active": run.active_students,
            "source": run.source,
            "records": run.records,
            "run": run.id,
            "mode": run.mode,
            **(extra or {}),
        },
        detail=detail,
    )
    record_change(
        session, district_id=run.district_id, topic=ROSTER_TOPIC, now=now, subject_id=run.id
    )


def _refused(source: str, run_id: int | None, problem: Problem) -> SyncOutcome:
    return SyncOutcome(source=source, status=FAILED, run_id=run_id, problem=problem)


def _outcome(
    run: RosterSyncRun,
    excluded: dict[str, int],
    problem: Problem | None,
    *,
    used: tuple[int, int] | None = None,
) -> SyncOutcome:
    return SyncOutcome(
        source=run.source,
        status=run.status,
        run_id=run.id,
        records=run.records,
        active_before=run.active_before,
        active_after=run.active_students,
        removed_active=run.removed_active,
        excluded=excluded,
        server_count=run.server_count,
        problem=problem,
        used_before=used[0] if used else None,
        used_after=used[1] if used else None,
        warnings=run.warnings,
        quarantined=run.quarantined,
        mode=run.mode,
    )
