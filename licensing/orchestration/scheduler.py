"""The scheduler: license refreshes, roster syncs, daily usage snapshots, alert re-evaluation,
notifications and the cleanup of interrupted roster syncs, for every district, without anyone
pressing a button.

Jobs live in the ``scheduled_job`` table. A runner claims a due job by taking its lease in one
conditional UPDATE, so with several workers or hosts each run happens once; a runner that dies
loses its lease when it expires and another takes over. Failed jobs back off exponentially (never
longer than their interval, nor past their next scheduled run), and every job's last outcome is
kept for ``scheduledJobs``.

Roster syncs and license refreshes run on a cron schedule in the district's time zone
(``licensing.schedules``): each next run comes from the expression, never from when the last one
ended, so they do not drift into the school day. The other jobs run at fixed intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from anyio import to_thread
from sqlalchemy import ColumnElement, and_, or_, update
from sqlmodel import Session, col, select

from db.models import ScheduledJob
from db.outage import is_database_unavailable
from db.session import Database, affected_rows
from licensing.domain.states import ScheduledJobKind, ScheduledJobOutcome
from licensing.problems import internal_error_text
from licensing.schedules import CronSchedule

logger = logging.getLogger("licensing.scheduler")

TICK_SECONDS = 5.0
# A tick takes no further due job once it has run this long, and the next starts at once: it
# reads the jobs again, so a night of roster syncs does not hold the jobs due at every tick
# (notifications, webhooks) until the last sync due at its start has run.
TICK_BUDGET = timedelta(seconds=30)
LEASE = timedelta(minutes=15)
ALERTS_EVERY = timedelta(minutes=5)  # picks up the passing of midnight in each district's zone
SNAPSHOT_EVERY = timedelta(hours=1)  # one row a day, kept current through the day
FIRST_RETRY = timedelta(minutes=1)
ROSTER_CLEANUP_EVERY = timedelta(minutes=5)  # finds roster syncs whose process died


@dataclass(frozen=True)
class JobOutcome:
    name: str
    ok: bool
    detail: str | None = None


@dataclass(frozen=True)
class JobSpec:
    """A job as configured now: it runs on its cron ``schedule`` when it has one, else every
    ``every`` (every tick for zero)."""

    name: str
    kind: ScheduledJobKind
    district_id: int | None
    every: timedelta
    run: Callable[[], Awaitable[JobOutcome]]
    schedule: CronSchedule | None = None

    @property
    def stored_interval(self) -> int | None:
        return None if self.schedule else interval_seconds(self.every)

    @property
    def stored_schedule(self) -> str | None:
        return self.schedule.key if self.schedule else None


def interval_seconds(every: timedelta) -> int:
    return round(every.total_seconds())


def rescheduled_run(
    *, next_run_at: datetime, last_finished_at: datetime | None, failing: bool, every: timedelta
) -> datetime:
    """When a job whose interval changed to ``every`` runs next: one new interval after its last
    run (which may be now or past: it is then due). A job that never ran keeps its first run,
    and a failing one keeps its retry when that is sooner."""
    if last_finished_at is None:
        return next_run_at
    after_last = last_finished_at + every
    return min(next_run_at, after_last) if failing else after_last


def runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class JobProvider(Protocol):
    """What the scheduler runs: the jobs as configured now (asked in a thread on every tick, so
    a new district or roster source gets its jobs without a restart)."""

    def job_specs(self) -> list[JobSpec]: ...


class Scheduler:
    """Runs the provider's jobs under leases in ``scheduled_job``. It does not know what the jobs
    do, so it needs only the database and the clock."""

    def __init__(
        self,
        database: Database,
        clock: Callable[[], datetime],
        jobs: JobProvider,
        *,
        holder: str | None = None,
    ) -> None:
        self.database = database
        self.clock = clock
        self.jobs = jobs
        self.holder = holder or runner_name()
        self.random = random.Random()
        self.cut_short = False  # the last tick left due jobs to the next

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set; one failing tick never stops the scheduler."""
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                logger.exception("Scheduler tick failed")
            if self.cut_short:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=TICK_SECONDS)

    async def tick(self) -> list[JobOutcome]:
        """Run the jobs that are due now and not leased by another runner, in the provider's
        order, until none is left or the tick has run for ``TICK_BUDGET``."""
        started = self.clock()
        self.cut_short = False
        specs = await to_thread.run_sync(self.jobs.job_specs)
        await to_thread.run_sync(self._ensure_jobs, specs)
        # One read finds the few jobs due among a fleet's tens of thousands: a claim attempt on
        # every job, every tick, of every runner grew with the fleet and held the database.
        due = await to_thread.run_sync(self._claimable_names)
        outcomes = []
        for spec in specs:
            if spec.name not in due:
                continue
            if self.clock() - started >= TICK_BUDGET:
                self.cut_short = True
                break
            if not await to_thread.run_sync(self._claim, spec.name):
                continue
            try:
                outcome = await spec.run()
            except Exception as error:
                if is_database_unavailable(error):
                    logger.warning("Job %s stopped: the database is unavailable", spec.name)
                    detail = "The database was unavailable; the job runs again at its next try."
                else:
                    logger.error("Job %s failed", spec.name)
                    detail = f"Failed: {internal_error_text(error)}."
                outcome = JobOutcome(spec.name, False, detail)
            await to_thread.run_sync(self._finish, spec, outcome)
            outcomes.append(outcome)
        return outcomes

    def _ensure_jobs(self, specs: list[JobSpec]) -> None:
        """Add the jobs that are new, and reschedule those whose configured timing changed."""
        now = self.clock()
        with self.database.write() as session:
            stored = {
                name: (interval, schedule)
                for name, interval, schedule in session.exec(
                    select(ScheduledJob.name, ScheduledJob.interval_seconds, ScheduledJob.schedule)
                ).all()
            }
            for spec in specs:
                if spec.name not in stored:
                    session.add(
                        ScheduledJob(
                            name=spec.name,
                            kind=spec.kind.value,
                            district_id=spec.district_id,
                            next_run_at=self._first_run(spec, now),
                            interval_seconds=spec.stored_interval,
                            schedule=spec.stored_schedule,
                        )
                    )
                elif stored[spec.name] != (spec.stored_interval, spec.stored_schedule):
                    self._reschedule(session, spec, now)

    def _first_run(self, spec: JobSpec, now: datetime) -> datetime:
        """New jobs start soon (a new district needs its roster and license), spread out so a
        restart does not stampede; a scheduled one waits for the end of quiet hours."""
        if spec.schedule is not None:
            return spec.schedule.allowed(now + self._jitter(timedelta(minutes=1)))
        return now + self._jitter(min(spec.every, timedelta(minutes=1))) if spec.every else now

    def _reschedule(self, session: Session, spec: JobSpec, now: datetime) -> None:
        job = session.get(ScheduledJob, spec.name)
        if job is None:
            return
        if job.lease_holder is not None and job.lease_expires_at and job.lease_expires_at > now:
            return  # running: it is rescheduled with the new timing when it finishes
        before = job.schedule or f"every {job.interval_seconds} s"
        if spec.schedule is not None:
            if job.last_finished_at is not None and job.next_run_at > now:
                # A job that never ran keeps its first run, and a due one stays due.
                planned = spec.schedule.next_run(now)
                failing = job.consecutive_failures > 0
                job.next_run_at = min(job.next_run_at, planned) if failing else planned
        else:
            planned = rescheduled_run(
                next_run_at=job.next_run_at,
                last_finished_at=job.last_finished_at,
                failing=job.consecutive_failures > 0,
                every=spec.every,
            )
            if planned != job.next_run_at:  # spread out, as after any run
                job.next_run_at = planned + self._jitter(spec.every / 10)
        logger.info(
            "Job %s rescheduled for %s: its timing changed from %s to %s",
            spec.name,
            job.next_run_at.isoformat(),
            before,
            spec.stored_schedule or f"every {spec.stored_interval} s",
        )
        job.interval_seconds = spec.stored_interval
        job.schedule = spec.stored_schedule

    def _claimable(self, now: datetime) -> ColumnElement[bool]:
        """Due, and leased by no runner that may still be running it."""
        return and_(
            col(ScheduledJob.next_run_at) <= now,
            or_(
                col(ScheduledJob.lease_holder).is_(None),
                col(ScheduledJob.lease_expires_at) < now,
                # Its own lease, left by a tick the database failed under: this runner runs one
                # job at a time, so that job is not running any more.
                col(ScheduledJob.lease_holder) == self.holder,
            ),
        )

    def _claimable_names(self) -> set[str]:
        with self.database.read() as session:
            return set(
                session.exec(select(ScheduledJob.name).where(self._claimable(self.clock()))).all()
            )

    def _claim(self, name: str) -> bool:
        now = self.clock()
        # One conditional UPDATE is the claim, so no lock is needed: SQLite's writers take turns,
        # and PostgreSQL re-checks the WHERE of a blocked UPDATE on the row the winner committed.
        with self.database.write() as session:
            result = session.execute(
                update(ScheduledJob)
                .where(col(ScheduledJob.name) == name, self._claimable(now))
                .values(lease_holder=self.holder, lease_expires_at=now + LEASE, last_started_at=now)
            )
            return affected_rows(result) == 1

    def _finish(self, spec: JobSpec, outcome: JobOutcome) -> None:
        now = self.clock()
        with self.database.write() as session:
            job = session.get(ScheduledJob, spec.name)
            if job is None or job.lease_holder != self.holder:
                return  # the lease expired and another runner took the job over
            job.lease_holder = None
            job.lease_expires_at = None
            job.last_finished_at = now
            job.interval_seconds = spec.stored_interval
            job.schedule = spec.stored_schedule
            job.last_outcome = (
                ScheduledJobOutcome.OK if outcome.ok else ScheduledJobOutcome.FAILED
            ).value
            job.last_error = None if outcome.ok else (outcome.detail or "failed")[:2000]
            if outcome.ok:
                job.consecutive_failures = 0
            else:
                job.consecutive_failures += 1
            job.next_run_at = self._next_run(spec, now, failures=job.consecutive_failures)

    def _next_run(self, spec: JobSpec, now: datetime, *, failures: int) -> datetime:
        """After a run: the next scheduled one, or after a failure a retry backing off
        exponentially (never past the next scheduled run, nor into quiet hours)."""
        backoff = FIRST_RETRY * 2 ** min(max(failures - 1, 0), 16)
        if spec.schedule is not None:
            scheduled = spec.schedule.next_run(now)
            if not failures:
                return scheduled
            return min(spec.schedule.allowed(now + self._jitter(backoff)), scheduled)
        if not failures:
            return now + spec.every + self._jitter(spec.every / 10)
        wait = min(backoff, spec.every) if spec.every else FIRST_RETRY
        return now + self._jitter(wait)

    def _jitter(self, span: timedelta) -> timedelta:
        return timedelta(seconds=self.random.uniform(0, span.total_seconds()))


@dataclass(frozen=True)
class JobState:
    name: str
    kind: ScheduledJobKind
    schedule: str | None
    next_run_at: datetime
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_outcome: ScheduledJobOutcome | None
    last_error: str | None
    consecutive_failures: int


def district_jobs(database, district_id: int) -> list[JobState]:
    with database.read() as session:
        rows = session.exec(
            select(ScheduledJob)
            .where(ScheduledJob.district_id == district_id)
            .order_by(ScheduledJob.name)
        ).all()
    return [
        JobState(
            name=row.name,
            kind=ScheduledJobKind(row.kind),
            schedule=row.schedule,
            next_run_at=row.next_run_at,
            last_started_at=row.last_started_at,
            last_finished_at=row.last_finished_at,
            last_outcome=ScheduledJobOutcome(row.last_outcome) if row.last_outcome else None,
            last_error=row.last_error,
            consecutive_failures=row.consecutive_failures,
        )
        for row in rows
    ]
