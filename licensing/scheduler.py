"""The scheduler: license refreshes, roster syncs, daily usage snapshots, alert re-evaluation and
notifications, for every district, without anyone pressing a button.

Jobs live in the ``scheduled_job`` table. A runner claims a due job by taking its lease in one
conditional UPDATE, so with several workers or hosts each run happens once; a runner that dies
loses its lease when it expires and another takes over. Failed jobs back off exponentially (never
longer than their interval), and every job's last outcome is kept for ``scheduledJobs``.
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
from typing import TYPE_CHECKING

from anyio import to_thread
from sqlalchemy import or_, update
from sqlmodel import col, select

from db.models import District, ScheduledJob
from licensing.problems import internal_error_text

if TYPE_CHECKING:
    from licensing.service import LicensingService

logger = logging.getLogger("licensing.scheduler")

TICK_SECONDS = 5.0
LEASE = timedelta(minutes=15)
ALERTS_EVERY = timedelta(minutes=5)  # picks up the passing of midnight in each district's zone
SNAPSHOT_EVERY = timedelta(hours=1)  # one row a day, kept current through the day
FIRST_RETRY = timedelta(minutes=1)


@dataclass(frozen=True)
class JobOutcome:
    name: str
    ok: bool
    detail: str | None = None


@dataclass(frozen=True)
class JobSpec:
    name: str
    kind: str
    district_id: int | None
    every: timedelta
    run: Callable[[], Awaitable[JobOutcome]]


def runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Scheduler:
    def __init__(self, service: LicensingService, *, holder: str | None = None) -> None:
        self.service = service
        self.holder = holder or runner_name()
        self.random = random.Random()

    @property
    def database(self):  # type: ignore[no-untyped-def]
        return self.service.database

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set; one failing tick never stops the scheduler."""
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                logger.exception("Scheduler tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=TICK_SECONDS)

    async def tick(self) -> list[JobOutcome]:
        """Run every job that is due now and not leased by another runner."""
        specs = await to_thread.run_sync(self._job_specs)
        await to_thread.run_sync(self._ensure_jobs, specs)
        outcomes = []
        for spec in specs:
            if not await to_thread.run_sync(self._claim, spec.name):
                continue
            try:
                outcome = await spec.run()
            except Exception as error:
                logger.error("Job %s failed", spec.name)
                outcome = JobOutcome(spec.name, False, f"Failed: {internal_error_text(error)}.")
            await to_thread.run_sync(self._finish, spec, outcome)
            outcomes.append(outcome)
        return outcomes

    def _job_specs(self) -> list[JobSpec]:
        settings = self.service.settings
        with self.database.read() as session:
            districts = [(row.id, row.slug) for row in session.exec(select(District)).all()]
        specs = [JobSpec("notifications", "notifications", None, timedelta(0), self._notifications)]
        for district_id, slug in districts:
            specs += [
                JobSpec(
                    f"license_refresh:{district_id}",
                    "license_refresh",
                    district_id,
                    timedelta(seconds=settings.license_refresh_interval_seconds),
                    self._license_refresh(district_id),
                ),
                JobSpec(
                    f"alerts:{district_id}",
                    "alerts",
                    district_id,
                    ALERTS_EVERY,
                    self._alerts(district_id),
                ),
                JobSpec(
                    f"usage_snapshot:{district_id}",
                    "usage_snapshot",
                    district_id,
                    SNAPSHOT_EVERY,
                    self._usage_snapshot(district_id),
                ),
            ]
            for source, config in sorted(settings.district(slug).roster_sources.items()):
                specs.append(
                    JobSpec(
                        f"roster_sync:{district_id}:{source}",
                        "roster_sync",
                        district_id,
                        timedelta(hours=config.sync_interval_hours),
                        self._roster_sync(district_id, source),
                    )
                )
        return specs

    def _ensure_jobs(self, specs: list[JobSpec]) -> None:
        now = self.service.clock()
        with self.database.write() as session:
            known = set(session.exec(select(ScheduledJob.name)).all())
            for spec in specs:
                if spec.name not in known:
                    # New jobs start soon, spread out so a restart does not stampede.
                    first_run = now + self._jitter(min(spec.every, timedelta(minutes=1)))
                    session.add(
                        ScheduledJob(
                            name=spec.name,
                            kind=spec.kind,
                            district_id=spec.district_id,
                            next_run_at=first_run if spec.every else now,
                        )
                    )

    def _claim(self, name: str) -> bool:
        now = self.service.clock()
        # One conditional UPDATE is the claim, so no lock is needed: SQLite's writers take turns,
        # and PostgreSQL re-checks the WHERE of a blocked UPDATE on the row the winner committed.
        with self.database.write() as session:
            result = session.execute(
                update(ScheduledJob)
                .where(
                    col(ScheduledJob.name) == name,
                    col(ScheduledJob.next_run_at) <= now,
                    or_(
                        col(ScheduledJob.lease_holder).is_(None),
                        col(ScheduledJob.lease_expires_at) < now,
                    ),
                )
                .values(lease_holder=self.holder, lease_expires_at=now + LEASE, last_started_at=now)
            )
            return result.rowcount == 1

    def _finish(self, spec: JobSpec, outcome: JobOutcome) -> None:
        now = self.service.clock()
        with self.database.write() as session:
            job = session.get(ScheduledJob, spec.name)
            if job is None or job.lease_holder != self.holder:
                return  # the lease expired and another runner took the job over
            job.lease_holder = None
            job.lease_expires_at = None
            job.last_finished_at = now
            job.last_outcome = "ok" if outcome.ok else "failed"
            job.last_error = None if outcome.ok else (outcome.detail or "failed")[:2000]
            if outcome.ok:
                job.consecutive_failures = 0
                job.next_run_at = now + spec.every + self._jitter(spec.every / 10)
            else:
                job.consecutive_failures += 1
                backoff = FIRST_RETRY * 2 ** min(job.consecutive_failures - 1, 16)
                wait = min(backoff, spec.every) if spec.every else FIRST_RETRY
                job.next_run_at = now + self._jitter(wait)

    def _jitter(self, span: timedelta) -> timedelta:
        return timedelta(seconds=self.random.uniform(0, span.total_seconds()))

    # --- The jobs -------------------------------------------------------------------------

    def _license_refresh(self, district_id: int) -> Callable[[], Awaitable[JobOutcome]]:
        async def run() -> JobOutcome:
            outcome = await self.service.license_updater.refresh(
                district_id=district_id, actor="scheduler"
            )
            name = f"license_refresh:{district_id}"
            if outcome.problem:
                return JobOutcome(name, False, f"{outcome.problem.code}: {outcome.problem.message}")
            return JobOutcome(name, True, "updated" if outcome.updated else "unchanged")

        return run

    def _roster_sync(self, district_id: int, source: str) -> Callable[[], Awaitable[JobOutcome]]:
        async def run() -> JobOutcome:
            outcome = await self.service.roster_sync.sync(
                district_id=district_id, source=source, actor="scheduler"
            )
            name = f"roster_sync:{district_id}:{source}"
            if outcome.status == "failed":
                return JobOutcome(name, False, outcome.problem.message if outcome.problem else None)
            return JobOutcome(name, True, outcome.status)

        return run

    def _alerts(self, district_id: int) -> Callable[[], Awaitable[JobOutcome]]:
        async def run() -> JobOutcome:
            # Reading the state re-evaluates alerts whose facts moved with the clock (expiry).
            await self.service.district_state(district_id)
            return JobOutcome(f"alerts:{district_id}", True)

        return run

    def _usage_snapshot(self, district_id: int) -> Callable[[], Awaitable[JobOutcome]]:
        async def run() -> JobOutcome:
            await self.service.take_usage_snapshot(district_id)
            return JobOutcome(f"usage_snapshot:{district_id}", True)

        return run

    async def _notifications(self) -> JobOutcome:
        dispatched = await self.service.dispatch_notifications()
        delivered = await self.service.deliver_webhooks()
        return JobOutcome(
            "notifications", True, f"{dispatched} event(s), {delivered} webhook(s) delivered"
        )


@dataclass(frozen=True)
class JobState:
    name: str
    kind: str
    next_run_at: datetime
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_outcome: str | None
    last_error: str | None
    consecutive_failures: int


def district_jobs(database, district_id: int) -> list[JobState]:  # type: ignore[no-untyped-def]
    with database.read() as session:
        rows = session.exec(
            select(ScheduledJob)
            .where(ScheduledJob.district_id == district_id)
            .order_by(ScheduledJob.name)
        ).all()
    return [
        JobState(
            name=row.name,
            kind=row.kind,
            next_run_at=row.next_run_at,
            last_started_at=row.last_started_at,
            last_finished_at=row.last_finished_at,
            last_outcome=row.last_outcome,
            last_error=row.last_error,
            consecutive_failures=row.consecutive_failures,
        )
        for row in rows
    ]
