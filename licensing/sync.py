"""The sync engine: a roster source's records become its stored roster, all or nothing.

Records stream from the plugin into a staging table in batches, so memory does not grow with the
roster. When the source has delivered everything, one transaction swaps the staged roster in,
recounts usage and re-evaluates alerts. Any error discards the staging rows and leaves the
previous roster and counts exactly as they were. A sync that would stop counting more than the
configured share of the source's active students is held until an administrator confirms it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from anyio import to_thread
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from db import queries
from db.models import District, RosterSyncRun
from db.session import Database, lock_district
from licensing.audit import record_event
from licensing.district_view import reevaluate_alerts
from licensing.districts import district_ref
from licensing.metrics import count_roster_sync
from licensing.problems import Problem, internal_error_text, is_unique_violation
from licensing.roster import current_usage, normalize, refresh_usage, row_problems
from licensing.settings import RosterSourceConfig, Settings
from plugins.manager import PluginManager, UnknownSourceError
from plugins.records import RosterFileError, RowProblem, ServerCount, SourceError

BATCH_SIZE = 5_000
MAX_REPORTED_PROBLEMS = 1_000
SYNC_ACTION = "roster_sync"


@dataclass(frozen=True)
class SyncOutcome:
    source: str
    status: str  # applied, held, failed
    run_id: int | None
    records: int = 0
    active_before: int | None = None
    active_after: int | None = None
    removed_active: int | None = None
    excluded: dict[str, int] = field(default_factory=dict)
    server_count: int | None = None
    problem: Problem | None = None


@dataclass
class _Tally:
    seen: int = 0
    other_role: int = 0
    server_count: int | None = None
    problems: list[RowProblem] = field(default_factory=list)


class RosterSync:
    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        plugins: PluginManager,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.database = database
        self.plugins = plugins
        self.clock = clock

    @property
    def sync_failing_tolerance(self) -> timedelta:
        return timedelta(hours=self.settings.sync_failing_tolerance_hours)

    def configured_sources(self, slug: str) -> dict[str, RosterSourceConfig]:
        return self.settings.district(slug).roster_sources

    async def sync(
        self,
        *,
        district_id: int,
        source: str,
        actor: str,
        on_progress: Callable[[int], None] | None = None,
    ) -> SyncOutcome:
        """Read the source now and apply what it returns (or hold it, or keep the old roster)."""
        district = await to_thread.run_sync(self._district, district_id)
        config = self.configured_sources(district.slug).get(source)
        if config is None:
            known = ", ".join(sorted(self.configured_sources(district.slug))) or "none"
            return SyncOutcome(
                source=source,
                status="failed",
                run_id=None,
                problem=Problem(
                    "UNKNOWN_SOURCE",
                    f"District {district.slug!r} has no roster source {source!r} "
                    f"(configured: {known}).",
                ),
            )
        run_id = await to_thread.run_sync(self._start_run, district_id, source, config.kind, actor)
        tally = _Tally()
        try:
            plugin_source = self.plugins.roster_source(config.kind)
            result = plugin_source.fetch_students(
                district=district_ref(district), options=dict(config.options)
            )
            async for batch in _batches(result):
                rows = self._normalize_batch(batch, tally)
                if rows:
                    await to_thread.run_sync(self._stage, run_id, rows)
                if on_progress is not None:
                    on_progress(tally.seen)
            if tally.problems:
                raise RosterFileError(f"roster source {source!r}", tally.problems)
        except (SourceError, UnknownSourceError) as error:
            problem = Problem("SOURCE_FAILED", str(error))
        except Exception as error:  # a plugin's bug (or the database's) never touches the roster
            if isinstance(error, IntegrityError) and is_unique_violation(error):
                message = f"The roster source {source!r} listed the same id twice"
            else:
                message = f"The roster source {source!r} failed unexpectedly " + (
                    f"({internal_error_text(error)})"
                )
            problem = Problem("SOURCE_FAILED", f"{message}; nothing was applied.")
        else:
            return await to_thread.run_sync(
                self._finish, district_id, source, run_id, tally, config.max_drop_share, actor
            )
        await to_thread.run_sync(self._fail, district_id, source, run_id, tally, problem, actor)
        return SyncOutcome(
            source=source, status="failed", run_id=run_id, records=tally.seen, problem=problem
        )

    async def confirm(self, *, district_id: int, source: str, actor: str) -> SyncOutcome:
        """Apply the held sync of a source, as an administrator decided."""
        return await to_thread.run_sync(self._confirm, district_id, source, actor)

    def _district(self, district_id: int) -> District:
        with self.database.read() as session:
            district = session.get(District, district_id)
        if district is None:
            raise LookupError(f"district {district_id} does not exist")
        return district

    def _start_run(self, district_id: int, source: str, kind: str, actor: str) -> int:
        with self.database.write() as session:
            run = RosterSyncRun(
                district_id=district_id,
                source=source,
                kind=kind,
                status="running",
                started_at=self.clock(),
                actor=actor,
            )
            session.add(run)
            session.flush()
            return run.id

    def _normalize_batch(self, batch: list[Any], tally: _Tally) -> list[dict[str, Any]]:
        rows = []
        for record in batch:
            if isinstance(record, ServerCount):
                tally.server_count = record.total
                continue
            tally.seen += 1
            try:
                row = normalize(record, position=tally.seen)
            except ValueError as error:
                room = MAX_REPORTED_PROBLEMS - len(tally.problems)
                tally.problems += row_problems(error, position=tally.seen)[: max(room, 0)]
                continue
            if row is None:
                tally.other_role += 1
            else:
                rows.append(row)
        return rows

    def _stage(self, run_id: int, rows: list[dict[str, Any]]) -> None:
        with self.database.write() as session:
            queries.insert_staging_rows(session, run_id=run_id, rows=rows)

    def _finish(
        self,
        district_id: int,
        source: str,
        run_id: int,
        tally: _Tally,
        max_drop_share: float,
        actor: str,
    ) -> SyncOutcome:
        with self.database.write() as session:
            lock_district(session, district_id)
            run = session.get(RosterSyncRun, run_id)
            statistics = queries.staged_statistics(session, run_id=run_id)
            before, removed = queries.removed_active_people(
                session, district_id=district_id, source=source, run_id=run_id
            )
            excluded = _excluded(statistics, tally)
            run.records = tally.seen
            run.active_students = statistics["active_students"]
            run.active_before = before
            run.removed_active = removed
            run.excluded = json.dumps(excluded, sort_keys=True)
            run.server_count = tally.server_count
            if before and removed / before > max_drop_share:
                return self._hold(session, run, excluded, max_drop_share)
            return self._apply(session, run, excluded, actor)

    def _hold(
        self, session: Session, run: RosterSyncRun, excluded: dict[str, int], share: float
    ) -> SyncOutcome:
        # An older held sync of the same source is superseded by this one.
        for older in session.exec(
            select(RosterSyncRun).where(
                RosterSyncRun.district_id == run.district_id,
                RosterSyncRun.source == run.source,
                RosterSyncRun.status == "held",
                RosterSyncRun.id != run.id,
            )
        ).all():
            older.status = "discarded"
            queries.discard_staging(session, run_id=older.id)
        now = self.clock()
        run.status = "held"
        run.finished_at = now
        message = (
            f"This sync would stop counting {run.removed_active} of the {run.active_before} "
            f"active students of {run.source!r} (more than {share:.0%}). It is held: run "
            f"`licensing sync confirm --source {run.source}` to apply it."
        )
        run.error = message
        record_event(
            session,
            district_id=run.district_id,
            actor=run.actor,
            action=SYNC_ACTION,
            outcome="held",
            now=now,
            old={"active_students": run.active_before},
            new={"active_students": run.active_students},
            detail=message,
        )
        count_roster_sync(outcome="held", plugin=run.kind)
        return _outcome(run, excluded, Problem("SYNC_HELD", message))

    def _apply(
        self, session: Session, run: RosterSyncRun, excluded: dict[str, int], actor: str
    ) -> SyncOutcome:
        now = self.clock()
        before = current_usage(session, district_id=run.district_id)
        queries.swap_in_staged_roster(
            session, district_id=run.district_id, source=run.source, run_id=run.id
        )
        after = refresh_usage(session, district_id=run.district_id, now=now)
        reevaluate_alerts(
            session,
            district_id=run.district_id,
            now=now,
            sync_failing_tolerance=self.sync_failing_tolerance,
        )
        run.status = "applied"
        run.finished_at = now
        run.error = None
        record_event(
            session,
            district_id=run.district_id,
            actor=actor,
            action=SYNC_ACTION,
            outcome="applied",
            now=now,
            old={"used": before.active_students},
            new={"used": after.active_students, "source": run.source, "records": run.records},
        )
        count_roster_sync(outcome="applied", plugin=run.kind)
        return _outcome(run, excluded, None)

    def _fail(
        self,
        district_id: int,
        source: str,
        run_id: int,
        tally: _Tally,
        problem: Problem,
        actor: str,
    ) -> None:
        now = self.clock()
        with self.database.write() as session:
            queries.discard_staging(session, run_id=run_id)
            run = session.get(RosterSyncRun, run_id)
            run.status = "failed"
            run.finished_at = now
            run.records = tally.seen
            run.error = problem.message[:4000]
            count_roster_sync(outcome="failed", plugin=run.kind)
            record_event(
                session,
                district_id=district_id,
                actor=actor,
                action=SYNC_ACTION,
                outcome="failed",
                now=now,
                detail=f"{source}: {problem.message}",
            )

    def _confirm(self, district_id: int, source: str, actor: str) -> SyncOutcome:
        with self.database.write() as session:
            lock_district(session, district_id)
            run = session.exec(
                select(RosterSyncRun)
                .where(
                    RosterSyncRun.district_id == district_id,
                    RosterSyncRun.source == source,
                    RosterSyncRun.status == "held",
                )
                .order_by(col(RosterSyncRun.id).desc())
            ).first()
            if run is None:
                return SyncOutcome(
                    source=source,
                    status="failed",
                    run_id=None,
                    problem=Problem("NOTHING_HELD", f"No sync of {source!r} is waiting."),
                )
            excluded = json.loads(run.excluded or "{}")
            return self._apply(session, run, excluded, actor)


def _excluded(statistics: dict[str, int], tally: _Tally) -> dict[str, int]:
    return {
        "staff": statistics["staff"],
        "inactive": statistics["inactive"],
        "disabled": statistics["disabled"],
        "duplicate": statistics["duplicate"],
        "other_role": tally.other_role,
    }


def _outcome(run: RosterSyncRun, excluded: dict[str, int], problem: Problem | None) -> SyncOutcome:
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
    )


async def _batches(result: Any) -> AsyncIterator[list[Any]]:
    """Batches of what a source returned: an iterable, an async iterable, or an awaitable."""
    if hasattr(result, "__await__"):
        result = await result
    if hasattr(result, "__aiter__"):
        batch: list[Any] = []
        async for record in result:
            batch.append(record)
            if len(batch) >= BATCH_SIZE:
                yield batch
                batch = []
        if batch:
            yield batch
        return
    iterator: Iterator[Any] = iter(result)
    while True:
        # A blocking source (files, a sync client) is read in a worker thread.
        batch = await to_thread.run_sync(lambda: list(islice(iterator, BATCH_SIZE)))
        if not batch:
            return
        yield batch
