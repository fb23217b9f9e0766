"""The jobs the scheduler runs for the service: license refreshes, roster syncs, usage
snapshots, alert re-evaluation, notifications and the cleanup of interrupted roster syncs.

They live here, not in ``licensing.orchestration.scheduler``, so that the scheduler (leases, retries, backoff)
does not import the service: the service reads the scheduler's job states, and this module is
the one place that joins the two.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import cast

from anyio import to_thread
from sqlmodel import select

from db.models import District
from licensing.domain.states import ScheduledJobKind
from licensing.orchestration.scheduler import (
    ALERTS_EVERY,
    ROSTER_CLEANUP_EVERY,
    SNAPSHOT_EVERY,
    JobOutcome,
    JobSpec,
    Scheduler,
)
from licensing.orchestration.service import LicensingService
from licensing.schedules import CronSchedule, QuietHours, quiet_hours, spread_delay


def service_scheduler(service: LicensingService, *, holder: str | None = None) -> Scheduler:
    """A scheduler that runs the service's jobs (``holder`` names the runner in job leases)."""
    return Scheduler(service.database, service.clock, ServiceJobs(service), holder=holder)


class ServiceJobs:
    """The jobs of every district, as configured now."""

    def __init__(self, service: LicensingService) -> None:
        self.service = service

    def job_specs(self) -> list[JobSpec]:
        settings = self.service.settings
        with self.service.database.read() as session:
            # Three columns, not ORM objects: this runs on every tick of every runner. A stored
            # district's id is never null (the model types it `int | None` for unsaved rows).
            districts = cast(
                "list[tuple[int, str, str]]",
                session.exec(select(District.id, District.slug, District.time_zone)).all(),
            )
        specs = [
            JobSpec(
                "notifications",
                ScheduledJobKind.NOTIFICATIONS,
                None,
                timedelta(0),
                self._notifications,
            ),
            JobSpec(
                "roster_cleanup",
                ScheduledJobKind.ROSTER_CLEANUP,
                None,
                ROSTER_CLEANUP_EVERY,
                self._roster_cleanup,
            ),
        ]
        for district_id, slug, time_zone in districts:
            quiet = quiet_hours(settings.quiet_hours_for(slug))
            refresh = f"license_refresh:{district_id}"
            specs += [
                JobSpec(
                    refresh,
                    ScheduledJobKind.LICENSE_REFRESH,
                    district_id,
                    timedelta(0),
                    self._license_refresh(district_id),
                    schedule=self._schedule(
                        settings.license_refresh_schedule, refresh, time_zone, quiet
                    ),
                ),
                JobSpec(
                    f"alerts:{district_id}",
                    ScheduledJobKind.ALERTS,
                    district_id,
                    ALERTS_EVERY,
                    self._alerts(district_id),
                ),
                JobSpec(
                    f"usage_snapshot:{district_id}",
                    ScheduledJobKind.USAGE_SNAPSHOT,
                    district_id,
                    SNAPSHOT_EVERY,
                    self._usage_snapshot(district_id),
                ),
            ]
            for source in sorted(settings.district(slug).roster_sources):
                sync = f"roster_sync:{district_id}:{source}"
                specs.append(
                    JobSpec(
                        sync,
                        ScheduledJobKind.ROSTER_SYNC,
                        district_id,
                        timedelta(0),
                        self._roster_sync(district_id, source),
                        schedule=self._schedule(
                            settings.roster_sync_schedule_for(slug, source), sync, time_zone, quiet
                        ),
                    )
                )
        return specs

    def _schedule(
        self, expression: str, name: str, time_zone: str, quiet: QuietHours | None
    ) -> CronSchedule:
        """A job's cron schedule on its district's clock, with the job's own fixed delay."""
        delay = spread_delay(name, self.service.settings.schedule_jitter)
        return CronSchedule(expression, time_zone, delay, quiet)

    def _license_refresh(self, district_id: int) -> Callable[[], Awaitable[JobOutcome]]:
        async def run() -> JobOutcome:
            outcome = await self.service.license_updater.refresh(
                district_id=district_id, actor="scheduler"
            )
            name = f"license_refresh:{district_id}"
            if outcome.problem:
                return JobOutcome(name, False, f"{outcome.problem.code}: {outcome.problem.message}")
            said = ["updated" if outcome.updated else "unchanged"]
            said += [notice.message for notice in outcome.notices]
            return JobOutcome(name, True, " ".join(said))

        return run

    def _roster_sync(self, district_id: int, source: str) -> Callable[[], Awaitable[JobOutcome]]:
        async def run() -> JobOutcome:
            outcome = await self.service.roster_sync.sync(
                district_id=district_id, source=source, actor="scheduler"
            )
            name = f"roster_sync:{district_id}:{source}"
            if outcome.status == "failed":
                return JobOutcome(name, False, outcome.problem.message if outcome.problem else None)
            if outcome.note:  # unchanged: what the source found, e.g. a file still uploading
                return JobOutcome(name, True, f"{outcome.status}: {outcome.note}")
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

    async def _roster_cleanup(self) -> JobOutcome:
        reaped = await to_thread.run_sync(
            lambda: self.service.roster_sync.reap_stale_runs(actor="scheduler")
        )
        return JobOutcome("roster_cleanup", True, f"{reaped} interrupted sync(s) marked failed")

    async def _notifications(self) -> JobOutcome:
        dispatched = await self.service.dispatch_notifications()
        delivered = await self.service.deliver_webhooks()
        return JobOutcome(
            "notifications", True, f"{dispatched} event(s), {delivered} webhook(s) delivered"
        )
