"""The sync engine: a roster source's records become its stored roster, all or nothing.

Records stream from the plugin into a staging table in batches, so memory does not grow with the
roster; each batch refreshes the run's heartbeat. When the source has delivered everything, the
run is settled by ``licensing.storage.roster_changes`` like every other change of a roster: held when it
would drop too many active students, superseded when a newer run came first, else swapped in
with the new counts and alerts in one transaction. Any error discards the staging rows and leaves
the previous roster and counts exactly as they were; a run whose process died is found by its
old heartbeat and cleaned up by the next sync of its source or by the scheduler. What the source
read past (warnings) and could not classify (quarantined rows) is kept with the run.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from anyio import to_thread
from sqlalchemy.exc import IntegrityError

from db.models import District
from db.session import Database, stored_id
from licensing.domain.error_codes import ErrorCode
from licensing.problems import Problem, internal_error_text, is_unique_violation
from licensing.settings import RosterSourceConfig, Settings
from licensing.storage import roster_changes
from licensing.storage.districts import district_ref
from licensing.storage.intake import IntakeTally
from licensing.storage.roster import normalize, row_problems, unfit_values
from licensing.storage.roster_changes import SYNC_ACTION, RunAbandoned, SyncOutcome
from plugins.manager import PluginManager, UnknownSourceError, source_options
from plugins.records import (
    INTAKE_FACTS,
    KEPT_OUTCOMES,
    AfterSync,
    IntakeWarning,
    QuarantinedRow,
    RemovedRecord,
    RosterDelta,
    RosterFileError,
    RosterUnchanged,
    RowProblem,
    ServerCount,
    SourceError,
    SyncCursor,
    SyncState,
)

__all__ = ["BATCH_SIZE", "RosterSync", "SyncOutcome"]

logger = logging.getLogger(__name__)

BATCH_SIZE = 5_000
MAX_REPORTED_PROBLEMS = 1_000


@dataclass
class _Tally:
    seen: int = 0
    other_role: int = 0
    server_count: int | None = None
    problems: list[RowProblem] = field(default_factory=list)
    intake: IntakeTally = field(default_factory=IntakeTally)
    after_sync: AfterSync | None = None
    delta: bool = False  # the source returned a RosterDelta: the rows are changes
    cursor: str | None = None  # the last SyncCursor the source yielded


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
    def stale_after(self) -> timedelta:
        """How long a running sync may go without a heartbeat before it is taken for dead."""
        return timedelta(seconds=self.settings.roster_sync_stale_after_seconds)

    def configured_sources(self, slug: str) -> dict[str, RosterSourceConfig]:
        return self.settings.district(slug).roster_sources

    async def sync(
        self,
        *,
        district_id: int,
        source: str,
        actor: str,
        on_progress: Callable[[int], None] | None = None,
        full: bool = False,
    ) -> SyncOutcome:
        """Read the source now and apply what it returns (or hold it, or keep the old roster).

        A source that can deliver changes is handed the cursor of its last applied sync, unless
        ``full`` asks for the whole roster or its last full sync is older than the source's
        ``full_sync_every_days``."""
        district = await to_thread.run_sync(self._district, district_id)
        config = self.configured_sources(district.slug).get(source)
        if config is None:
            known = ", ".join(sorted(self.configured_sources(district.slug))) or "none"
            return SyncOutcome(
                source=source,
                status="failed",
                run_id=None,
                problem=Problem(
                    ErrorCode.UNKNOWN_SOURCE,
                    f"District {district.slug!r} has no roster source {source!r} "
                    f"(configured: {known}).",
                ),
            )
        run_id = await to_thread.run_sync(self._start_run, district_id, source, config.kind, actor)
        tally = _Tally()
        try:
            state = await to_thread.run_sync(self._sync_state, district_id, source, config, full)
            plugin_source = self.plugins.roster_source(config.kind)
            arguments: dict[str, Any] = {
                "district": district_ref(district),
                "options": source_options(
                    plugin_source, config.options, district_slug=district.slug
                ),
            }
            if _accepts_sync_state(plugin_source.fetch_students):
                arguments["sync_state"] = state
            result = plugin_source.fetch_students(**arguments)
            if inspect.isawaitable(result):
                result = await result
            if isinstance(result, RosterDelta):
                tally.delta = True
                tally.cursor = state.cursor  # kept unless the delta yields a newer one
                await to_thread.run_sync(self._mark_delta, run_id)
                result = result.records
            async for batch in _batches(result):
                rows = self._normalize_batch(batch, tally)
                if rows:
                    await to_thread.run_sync(self._stage, run_id, rows)
                if on_progress is not None:
                    on_progress(tally.seen)
            if tally.problems:
                raise RosterFileError(f"roster source {source!r}", tally.problems)
        except RosterUnchanged as unchanged:
            note = str(unchanged) or f"The roster source {source!r} has nothing new."
            return await to_thread.run_sync(
                self._unchanged, district_id, source, run_id, note, actor
            )
        except RunAbandoned:
            problem = Problem(
                ErrorCode.SOURCE_FAILED,
                f"The sync of {source!r} was taken for dead (no heartbeat for longer than "
                f"{self.settings.roster_sync_stale_after_seconds} s) and stopped; nothing was applied.",
            )
        except (SourceError, UnknownSourceError) as error:
            problem = Problem(ErrorCode.SOURCE_FAILED, str(error))
            detail = getattr(error, "detail", None)
            if detail:  # the source's words for the operator only: never stored or shown
                logger.warning(
                    "Roster sync of %r for district %s failed: %s (%s)",
                    source,
                    district_id,
                    problem.message,
                    detail,
                    extra={"code": problem.code.value},
                )
        except Exception as error:  # a plugin's bug (or the database's) never touches the roster
            if isinstance(error, IntegrityError) and is_unique_violation(error):
                message = f"The roster source {source!r} listed the same id twice"
            else:
                message = f"The roster source {source!r} failed unexpectedly " + (
                    f"({internal_error_text(error)})"
                )
            problem = Problem(ErrorCode.SOURCE_FAILED, f"{message}; nothing was applied.")
        else:
            outcome = await to_thread.run_sync(
                self._finish, district_id, source, run_id, tally, actor
            )
            if tally.after_sync is not None and outcome.status in KEPT_OUTCOMES:
                await _call_after_sync(tally.after_sync, outcome, config.kind)
            return outcome
        await to_thread.run_sync(self._fail, district_id, source, run_id, tally, problem, actor)
        return SyncOutcome(
            source=source, status="failed", run_id=run_id, records=tally.seen, problem=problem
        )

    async def confirm(
        self, *, district_id: int, source: str, actor: str, run_id: int | None = None
    ) -> SyncOutcome:
        """Apply the held sync of a source (the run ``run_id`` when given), as an administrator
        decided; refused when a newer sync superseded it."""
        return await to_thread.run_sync(self._confirm, district_id, source, run_id, actor)

    async def discard(
        self, *, district_id: int, source: str, actor: str, run_id: int
    ) -> SyncOutcome:
        """Drop the held sync ``run_id`` of a source, as an administrator decided: the roster in
        force stays."""
        return await to_thread.run_sync(self._discard, district_id, source, run_id, actor)

    def _discard(self, district_id: int, source: str, run_id: int, actor: str) -> SyncOutcome:
        guard = self._guard(district_id, source)
        with self.database.write() as session:
            return roster_changes.discard_held_run(
                session,
                district_id=district_id,
                source=source,
                run_id=run_id,
                actor=actor,
                now=self.clock(),
                guard=guard,
            )

    def _district(self, district_id: int) -> District:
        with self.database.read() as session:
            district = session.get(District, district_id)
        if district is None:
            raise LookupError(f"district {district_id} does not exist")
        return district

    def _start_run(self, district_id: int, source: str, kind: str, actor: str) -> int:
        now = self.clock()
        with self.database.write() as session:
            # A run of this source that died while staging is failed and cleaned up first.
            roster_changes.reap_stale_runs(
                session,
                now=now,
                stale_after=self.stale_after,
                actor=actor,
                district_id=district_id,
                source=source,
            )
            run = roster_changes.start_run(
                session, district_id=district_id, source=source, kind=kind, actor=actor, now=now
            )
            return stored_id(run)

    def _sync_state(
        self, district_id: int, source: str, config: RosterSourceConfig, full: bool
    ) -> SyncState:
        """What the source is told of its last syncs: the cursor of the last applied one, or
        none when a full sync is asked for, due, or the source's plugin changed."""
        with self.database.read() as session:
            last = roster_changes.last_applied_run(session, district_id=district_id, source=source)
            last_full = roster_changes.last_applied_run(
                session, district_id=district_id, source=source, mode=roster_changes.FULL
            )
        last_full_at = last_full.finished_at if last_full else None
        due = last_full_at is None or (
            self.clock() - last_full_at >= timedelta(days=config.full_sync_every_days)
        )
        if full or due or last is None or last.kind != config.kind or not last.cursor:
            return SyncState(cursor=None, last_full_sync_at=last_full_at)
        return SyncState(cursor=last.cursor, last_full_sync_at=last_full_at)

    def _mark_delta(self, run_id: int) -> None:
        with self.database.write() as session:
            roster_changes.mark_delta(session, run_id=run_id)

    def _normalize_batch(self, batch: list[Any], tally: _Tally) -> list[dict[str, Any]]:
        rows = []
        for record in batch:
            if isinstance(record, ServerCount):
                if not tally.delta:  # a delta's total is of its changes, not of the roster
                    tally.server_count = record.total
                continue
            if isinstance(
                record, IntakeWarning | QuarantinedRow
            ):  # facts of the reading, not people
                tally.intake.add(record)
                continue
            if isinstance(record, AfterSync):
                tally.after_sync = record
                continue
            if isinstance(record, SyncCursor):
                tally.cursor = record.value
                continue
            tally.seen += 1
            if isinstance(record, RemovedRecord):
                if tally.delta:  # a whole roster removes whoever it leaves out anyway
                    removal = _removal(record.source_id, tally)
                    if removal is not None:
                        rows.append(removal)
                continue
            try:
                row = normalize(record, position=tally.seen)
            except ValueError as error:
                room = MAX_REPORTED_PROBLEMS - len(tally.problems)
                tally.problems += row_problems(error, position=tally.seen)[: max(room, 0)]
                continue
            if row is None:
                tally.other_role += 1
                if tally.delta:  # not stored: the id's stored record, if any, goes
                    removal = _removal(_source_id_of(record), tally)
                    if removal is not None:
                        rows.append(removal)
            else:
                if tally.delta:
                    row["removed"] = False
                rows.append(row)
        return rows

    def _stage(self, run_id: int, rows: list[dict[str, Any]]) -> None:
        with self.database.write() as session:
            roster_changes.stage_rows(session, run_id=run_id, rows=rows, now=self.clock())

    def _finish(
        self, district_id: int, source: str, run_id: int, tally: _Tally, actor: str
    ) -> SyncOutcome:
        guard = self._guard(district_id, source)
        with self.database.write() as session:
            roster_changes.staging_loaded(session)
        with self.database.write() as session:
            return roster_changes.settle_run(
                session,
                run_id=run_id,
                action=SYNC_ACTION,
                actor=actor,
                now=self.clock(),
                guard=guard,
                records=tally.seen,
                other_role=tally.other_role,
                server_count=tally.server_count,
                intake=tally.intake,
                cursor=tally.cursor,
            )

    def _unchanged(
        self, district_id: int, source: str, run_id: int, note: str, actor: str
    ) -> SyncOutcome:
        guard = self._guard(district_id, source)
        with self.database.write() as session:
            return roster_changes.mark_unchanged(
                session, run_id=run_id, note=note, actor=actor, now=self.clock(), guard=guard
            )

    def _fail(
        self,
        district_id: int,
        source: str,
        run_id: int,
        tally: _Tally,
        problem: Problem,
        actor: str,
    ) -> None:
        guard = self._guard(district_id, source)
        with self.database.write() as session:
            roster_changes.fail_run(
                session,
                run_id=run_id,
                problem=problem,
                records=tally.seen,
                actor=actor,
                now=self.clock(),
                intake=tally.intake,
                alerts=guard.alerts,
            )

    def _confirm(
        self, district_id: int, source: str, run_id: int | None, actor: str
    ) -> SyncOutcome:
        guard = self._guard(district_id, source)
        with self.database.write() as session:
            return roster_changes.confirm_held_run(
                session,
                district_id=district_id,
                source=source,
                run_id=run_id,
                actor=actor,
                now=self.clock(),
                guard=guard,
            )

    def _guard(self, district_id: int, source: str) -> roster_changes.RosterGuard:
        slug = self._district(district_id).slug
        return roster_changes.guard_for(self.settings, slug=slug, source=source)

    def reap_stale_runs(self, *, actor: str) -> int:
        """Fail every district's runs that died while staging, and reclaim unneeded staging rows."""
        with self.database.write() as session:
            return roster_changes.reap_stale_runs(
                session, now=self.clock(), stale_after=self.stale_after, actor=actor
            )


async def _call_after_sync(after_sync: AfterSync, outcome: SyncOutcome, kind: str) -> None:
    """The source's tidying-up once its records are kept; its failure changes no outcome."""
    try:
        if inspect.iscoroutinefunction(after_sync.callback):
            await after_sync.callback(outcome.status)
        else:
            result = await to_thread.run_sync(after_sync.callback, outcome.status)
            if inspect.isawaitable(result):
                await result
    except Exception:
        logger.exception(
            "The %s source of %r could not finish after its sync (run %s, %s)",
            kind,
            outcome.source,
            outcome.run_id,
            outcome.status,
        )


def _accepts_sync_state(method: Callable[..., Any]) -> bool:
    """Whether a source's ``fetch_students`` takes the ``sync_state`` keyword (sources written
    before delta syncs do not, and are called as before)."""
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        parameter.name == "sync_state" or parameter.kind is inspect.Parameter.VAR_KEYWORD
        for parameter in parameters
    )


def _source_id_of(record: Any) -> Any:
    return record.get("source_id") if isinstance(record, Mapping) else record.source_id


def _removal(source_id: Any, tally: _Tally) -> dict[str, Any] | None:
    """The staging row that removes a record of a delta, or None (a problem noted) when the id
    is not an id."""
    text = "" if source_id is None else str(source_id).strip()
    problems = unfit_values({"source_id": text}) if text else []
    if not text or problems:
        reason = problems[0].message if problems else "the id is empty"
        if len(tally.problems) < MAX_REPORTED_PROBLEMS:
            tally.problems.append(RowProblem(tally.seen, "source_id", f"removal: {reason}"))
        return None
    return roster_changes.removal_row(text)


async def _batches(result: Any) -> AsyncIterator[list[Any]]:
    """Batches of what a source returned: an iterable, an async iterable, or an awaitable.

    When the source fails part-way, the facts about its reading it gave in the unfinished batch
    (warnings, quarantined rows) are still handed on, to be kept with the failed run; then the
    failure. Its records are not: nothing of a failed sync is staged after the failure."""
    if hasattr(result, "__await__"):
        result = await result
    if hasattr(result, "__aiter__"):
        pending: list[Any] = []
        try:
            async for record in result:
                pending.append(record)
                if len(pending) >= BATCH_SIZE:
                    yield pending
                    pending = []
        except Exception:
            if facts := _facts(pending):
                yield facts
            raise
        if pending:
            yield pending
        return
    iterator: Iterator[Any] = iter(result)
    while True:
        # A blocking source (files, a sync client) is read in a worker thread.
        batch, failure = await to_thread.run_sync(_read_batch, iterator)
        if failure is not None:
            if facts := _facts(batch):
                yield facts
            raise failure
        if not batch:
            return
        yield batch


def _read_batch(iterator: Iterator[Any]) -> tuple[list[Any], Exception | None]:
    """The next batch, and the error that ended it early (what came before is kept)."""
    batch: list[Any] = []
    try:
        batch.extend(islice(iterator, BATCH_SIZE))
    except Exception as error:
        return batch, error
    return batch, None


def _facts(items: list[Any]) -> list[Any]:
    return [item for item in items if isinstance(item, INTAKE_FACTS)]
