"""The scheduler runs each district's jobs once, whoever runs it, and backs off when they fail."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import anyio
import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from db.models import ScheduledJob
from db.outage import is_database_unavailable
from licensing.domain.states import ScheduledJobKind
from licensing.orchestration import scheduler as scheduler_module
from licensing.orchestration.scheduled_jobs import service_scheduler
from licensing.orchestration.scheduler import (
    LEASE,
    TICK_BUDGET,
    JobOutcome,
    JobSpec,
    Scheduler,
)
from tests.utils.databases import unreachable_database
from tests.utils.districts import create_district
from tests.utils.graphql import graphql_data

pytestmark = pytest.mark.anyio


def job(service, name: str) -> ScheduledJob:
    with service.database.read() as session:
        return session.exec(select(ScheduledJob).where(ScheduledJob.name == name)).one()


async def test_a_scheduled_refresh_applies_a_new_license(
    service, clock, issuer, make_district, client
):
    district = await make_district("riverside", seats=1000, active=960)
    scheduler = service_scheduler(service, holder="runner-a")
    await scheduler.tick()  # creates the jobs, due within a minute
    issuer.write("riverside", seats=1100)

    clock.advance(minutes=2)
    outcomes = {outcome.name: outcome for outcome in await scheduler.tick()}

    assert outcomes[f"license_refresh:{district.id}"].ok
    data = await graphql_data(
        client, district.viewer_token, "{ license { display } alerts { kind } }"
    )
    assert data["license"]["display"] == "960 / 1100"
    assert data["alerts"] == []
    refreshed = job(service, f"license_refresh:{district.id}")
    assert refreshed.last_outcome == "ok"
    # The next six-hourly run of the cron schedule (15:02 now: 18:00), plus the district's delay.
    six_pm = clock().replace(hour=18, minute=0, second=0)
    assert six_pm <= refreshed.next_run_at <= six_pm + timedelta(minutes=30)


async def test_each_due_job_runs_once_across_runners(service, clock, make_district):
    district = await make_district("riverside")
    first, second = (
        service_scheduler(service, holder="host-1"),
        service_scheduler(service, holder="host-2"),
    )
    await first.tick()
    clock.advance(minutes=2)

    ran_first = {outcome.name for outcome in await first.tick()}
    ran_second = {outcome.name for outcome in await second.tick()}

    assert f"license_refresh:{district.id}" in ran_first
    assert f"license_refresh:{district.id}" not in ran_second


async def test_a_tick_tries_to_claim_only_the_due_jobs_of_a_fleet(service, clock):
    for number in range(30):
        create_district(service, slug=f"district-{number:03d}")
    scheduler = service_scheduler(service, holder="runner-a")
    # Creates the fleet's 92 jobs, each due within the next minute but the notifications, due
    # at every tick.
    await scheduler.tick()

    claims: list[str] = []

    def count_claims(_connection, _cursor, statement: str, *_rest) -> None:
        # A claim takes the lease and starts the run (a finish gives the lease back).
        if (
            statement.startswith("UPDATE scheduled_job SET lease_holder=")
            and "last_started_at" in statement
        ):
            claims.append(statement)

    event.listen(service.database.engine, "before_cursor_execute", count_claims)
    try:
        assert [outcome.name for outcome in await scheduler.tick()] == ["notifications"]
        assert len(claims) == 1, claims  # the fleet's notifications, due at every tick

        claims.clear()
        due = "alerts:7"
        with service.database.write() as session:
            session.get(ScheduledJob, due).next_run_at = clock()
        assert sorted(outcome.name for outcome in await scheduler.tick()) == [due, "notifications"]
        assert len(claims) == 2, claims
    finally:
        event.remove(service.database.engine, "before_cursor_execute", count_claims)


class NightOfSyncs:
    """The notifications job, due at every tick, and five roster syncs of half a tick's budget
    each (on the test's clock); ``ran`` lists the jobs in the order they ran."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.ran: list[str] = []

    def job(self, name: str, kind: ScheduledJobKind, every: timedelta, takes: timedelta) -> JobSpec:
        async def run() -> JobOutcome:
            self.ran.append(name)
            self.clock.advance(seconds=takes.total_seconds())
            return JobOutcome(name, True)

        return JobSpec(name, kind, None, every, run)

    def job_specs(self) -> list[JobSpec]:
        notifications = self.job(
            "notifications", ScheduledJobKind.NOTIFICATIONS, timedelta(0), timedelta(0)
        )
        syncs = [
            self.job(f"sync:{n}", ScheduledJobKind.ROSTER_SYNC, timedelta(days=1), TICK_BUDGET / 2)
            for n in range(1, 6)
        ]
        return [notifications, *syncs]


async def night_scheduler(service, clock) -> tuple[Scheduler, NightOfSyncs]:
    """A scheduler of a NightOfSyncs whose jobs are all due."""
    night = NightOfSyncs(clock)
    scheduler = Scheduler(service.database, clock, night, holder="runner-a")
    await scheduler.tick()  # creates the jobs, due within a minute
    clock.advance(minutes=2)
    night.ran.clear()
    return scheduler, night


async def test_a_long_tick_leaves_the_rest_to_the_next_which_runs_notifications_first(
    service, clock
):
    scheduler, night = await night_scheduler(service, clock)

    ticks = []
    while True:
        ticks.append([outcome.name for outcome in await scheduler.tick()])
        if not scheduler.cut_short:
            break

    assert ticks == [
        ["notifications", "sync:1", "sync:2"],
        ["notifications", "sync:3", "sync:4"],
        ["notifications", "sync:5"],
    ]
    assert night.ran == [name for names in ticks for name in names]


async def test_after_a_tick_cut_short_the_next_starts_without_waiting(service, clock, monkeypatch):
    # Were the runner to wait between ticks, it would wait an hour.
    monkeypatch.setattr(scheduler_module, "TICK_SECONDS", 3600.0)
    scheduler, night = await night_scheduler(service, clock)
    stop = asyncio.Event()
    running = asyncio.create_task(scheduler.run_forever(stop))
    try:
        with anyio.fail_after(30):
            while "sync:5" not in night.ran:
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await running

    assert night.ran == [
        "notifications",
        "sync:1",
        "sync:2",
        "notifications",
        "sync:3",
        "sync:4",
        "notifications",
        "sync:5",
    ]


def on_the_first_license_fetch(service, monkeypatch, happen: Callable[[], Awaitable[None]]) -> None:
    """Make ``happen`` happen while the first license refresh from now on asks its source (after
    the runner took the job's lease, before it records the end); later fetches go straight on."""
    source = service.plugins.license_source("license_file")
    real_fetch = source.fetch_license
    fetched = 0

    async def fetch_license(*, district, options=None):
        nonlocal fetched
        fetched += 1
        if fetched == 1:
            await happen()
        return real_fetch(district=district, options=options)

    monkeypatch.setattr(source, "fetch_license", fetch_license)


async def test_a_lease_held_by_a_live_runner_is_respected_and_an_expired_one_taken_over(
    service, clock, make_district, monkeypatch
):
    district = await make_district("riverside")
    name = f"license_refresh:{district.id}"
    crashed, survivor = (
        service_scheduler(service, holder="crashed"),
        service_scheduler(service, holder="survivor"),
    )
    refreshing = asyncio.Event()

    async def never_answered() -> None:
        refreshing.set()
        await asyncio.Event().wait()

    on_the_first_license_fetch(service, monkeypatch, never_answered)
    await crashed.tick()
    clock.advance(minutes=2)
    # The runner takes the job's lease and starts it, then dies before finishing.
    dying = asyncio.create_task(crashed.tick())
    await refreshing.wait()
    dying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await dying
    assert job(service, name).lease_holder == "crashed"

    assert name not in {outcome.name for outcome in await survivor.tick()}
    clock.advance(seconds=LEASE.total_seconds() + 1)
    assert name in {outcome.name for outcome in await survivor.tick()}
    assert job(service, name).lease_holder is None


async def test_a_runner_takes_back_its_own_lease_left_by_a_tick_the_database_failed_under(
    service, clock, make_district, monkeypatch, tmp_path
):
    district = await make_district("riverside")
    name = f"license_refresh:{district.id}"
    runner, other = (
        service_scheduler(service, holder="runner"),
        service_scheduler(service, holder="other"),
    )
    working = runner.database
    gone = unreachable_database(working, tmp_path)

    async def database_goes_away() -> None:
        runner.database = gone

    on_the_first_license_fetch(service, monkeypatch, database_goes_away)
    await runner.tick()
    clock.advance(minutes=2)
    # The tick claims the job, then the database goes away before it can record the end.
    try:
        with pytest.raises(OperationalError) as failed:
            await runner.tick()
        assert is_database_unavailable(failed.value)
    finally:
        runner.database = working
        gone.dispose()
    assert job(service, name).lease_holder == "runner"

    # Its next tick (five seconds on, not a whole lease later) runs the job; no one else does.
    clock.advance(seconds=5)
    assert name not in {outcome.name for outcome in await other.tick()}
    assert name in {outcome.name for outcome in await runner.tick()}
    assert job(service, name).lease_holder is None


async def test_a_failing_job_backs_off_and_its_outcome_is_queryable(
    service, clock, settings, make_district, client
):
    district = await make_district("riverside")
    scheduler = service_scheduler(service, holder="runner")
    await scheduler.tick()
    settings.license_file_for("riverside").unlink()
    clock.advance(minutes=2)

    await scheduler.tick()
    failed = job(service, f"license_refresh:{district.id}")
    assert failed.last_outcome == "failed"
    assert "There is no license file yet" in failed.last_error
    assert failed.consecutive_failures == 1
    assert failed.next_run_at - clock() <= timedelta(minutes=1)

    clock.advance(minutes=1, seconds=1)
    await scheduler.tick()
    again = job(service, f"license_refresh:{district.id}")
    assert again.consecutive_failures == 2
    assert again.next_run_at - clock() <= timedelta(minutes=2)

    data = await graphql_data(
        client,
        district.manager_token,
        "{ scheduledJobs { name kind lastOutcome lastError consecutiveFailures } }",
    )
    jobs = {item["name"]: item for item in data["scheduledJobs"]}
    assert jobs[f"license_refresh:{district.id}"]["lastOutcome"] == "FAILED"
    assert jobs[f"license_refresh:{district.id}"]["consecutiveFailures"] == 2


async def test_the_passing_of_midnight_expires_a_license_without_a_sync(
    service, clock, make_district, client
):
    from datetime import UTC, date, datetime

    from db.models import Alert

    clock.set(datetime(2026, 6, 30, 12, 0, tzinfo=UTC))
    district = await make_district("riverside", expires_on=date(2026, 6, 30))
    scheduler = service_scheduler(service, holder="runner")
    await scheduler.tick()

    clock.set(datetime(2026, 7, 1, 0, 10, tzinfo=UTC))
    await scheduler.tick()

    with service.database.read() as session:
        kinds = {
            row.kind
            for row in session.exec(
                select(Alert).where(Alert.district_id == district.id, Alert.resolved_at.is_(None))
            ).all()
        }
    assert "EXPIRED" in kinds


# --- A changed refresh schedule ------------------------------------------------------------------


def restarted_with(service, clock, **changes):
    """The same database, served again with changed settings (as after a restart)."""
    from app.runtime import build_service

    return build_service(service.settings.model_copy(update=changes), clock=clock)


async def refreshed_once(service, clock, district_id: int) -> ScheduledJob:
    """Run the district's jobs once; its license refresh job after that run."""
    scheduler = service_scheduler(service, holder="runner")
    await scheduler.tick()
    clock.advance(minutes=2)
    await scheduler.tick()
    refreshed = job(service, f"license_refresh:{district_id}")
    assert refreshed.last_outcome == "ok"
    return refreshed


async def test_a_changed_refresh_schedule_reschedules_the_existing_jobs(
    service, clock, make_district
):
    district = await make_district("riverside")
    name = f"license_refresh:{district.id}"
    before = await refreshed_once(service, clock, district.id)  # at 15:02 UTC
    assert before.next_run_at >= clock().replace(hour=18, minute=0, second=0)

    restarted = restarted_with(
        service, clock, license_refresh_schedule="30 15 * * *", schedule_jitter_minutes=0
    )
    try:
        scheduler = service_scheduler(restarted, holder="restarted")
        assert name not in {outcome.name for outcome in await scheduler.tick()}
        after = job(service, name)
        assert after.next_run_at == clock().replace(hour=15, minute=30, second=0)
        assert after.schedule.startswith("30 15 * * * | UTC")

        clock.set(after.next_run_at)
        assert name in {outcome.name for outcome in await scheduler.tick()}
        assert job(service, name).next_run_at == after.next_run_at + timedelta(days=1)
    finally:
        restarted.database.dispose()


async def test_an_unchanged_schedule_leaves_the_next_run_alone(service, clock, make_district):
    district = await make_district("riverside")
    before = await refreshed_once(service, clock, district.id)

    await service_scheduler(service, holder="another").tick()

    assert job(service, before.name).next_run_at == before.next_run_at


async def test_a_database_error_in_a_job_is_not_quoted_in_its_last_error(
    service, clock, make_district, monkeypatch
):
    from sqlalchemy.exc import DataError

    district = await make_district("riverside")
    scheduler = service_scheduler(service, holder="runner")
    await scheduler.tick()

    async def failing_snapshot(district_id):
        raise DataError(
            "INSERT INTO usage_snapshot (name) VALUES (%(name)s)",
            {"name": "Alice Example"},
            Exception("value too long for type character varying(16)"),
        )

    monkeypatch.setattr(service, "take_usage_snapshot", failing_snapshot)
    clock.advance(minutes=2)
    await scheduler.tick()

    failed = job(service, f"usage_snapshot:{district.id}")
    assert failed.last_outcome == "failed"
    assert "a database error" in failed.last_error
    assert "INSERT" not in failed.last_error
    assert "Alice" not in failed.last_error
