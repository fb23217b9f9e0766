"""Roster syncs and license refreshes run on cron schedules on the district's clock: nightly at
02:00 by default, a fixed delay per district, no drift, once across daylight saving changes, and
never inside the quiet hours. All on the injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from app.runtime import build_service
from db.models import ScheduledJob
from licensing.orchestration.plugin_host import load_plugins
from licensing.orchestration.scheduled_jobs import service_scheduler
from licensing.settings import DistrictConfig, RosterSourceConfig
from plugins.hookspecs import hookimpl
from plugins.records import SourceError, StudentRecord
from tests.utils.clock import FakeClock
from tests.utils.districts import LicenseIssuer, create_district

pytestmark = pytest.mark.anyio

CHICAGO = ZoneInfo("America/Chicago")


class SlowSource:
    """A roster source whose sync takes ``takes`` of the test clock's time, and may fail."""

    name = "slow"
    description = "Students, slowly."

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.takes = timedelta(0)
        self.failing = False

    def fetch_students(self, *, district, options):
        self.clock.advance(seconds=self.takes.total_seconds())
        if self.failing:
            raise SourceError("The SIS is down for maintenance.")
        return [StudentRecord(source_id="S1")]


class SlowPlugin:
    def __init__(self, source: SlowSource) -> None:
        self.source = source

    @hookimpl
    def register_roster_sources(self, settings):
        return [self.source]


@pytest.fixture
def source(clock) -> SlowSource:
    return SlowSource(clock)


def serve(settings, clock, source, **changes):
    settings = settings.model_copy(update=changes)
    plugins = load_plugins(settings, load_entry_points=False, extra_plugins=[SlowPlugin(source)])
    return build_service(settings, upgrade_schema=False, clock=clock, plugins=plugins)


@pytest.fixture
def service(settings, clock, source):
    for slug in ("riverside", "oakhill"):
        settings.districts[slug] = DistrictConfig(
            roster_sources={"sis": RosterSourceConfig(kind="slow")}
        )
    built = serve(settings, clock, source)
    yield built
    built.database.dispose()


def job(service, name: str) -> ScheduledJob:
    with service.database.read() as session:
        return session.exec(select(ScheduledJob).where(ScheduledJob.name == name)).one()


async def runs_until(service, clock, name: str, until: datetime) -> list[datetime]:
    """Move the clock from due run to due run of ``name`` until ``until``; when each ran, on the
    Chicago clock. Every tick runs whatever else is due too, as a real runner would."""
    scheduler = service_scheduler(service, holder="runner")
    ran = []
    await scheduler.tick()
    while True:
        due = job(service, name).next_run_at
        if due > until:
            return ran
        clock.set(due)
        started = clock()
        if name in {outcome.name for outcome in await scheduler.tick()}:
            ran.append(started.astimezone(CHICAGO))


async def test_a_roster_syncs_nightly_at_a_fixed_time_that_never_drifts(service, clock, source):
    clock.set(datetime(2026, 11, 28, 18, 0, tzinfo=UTC))  # noon in Chicago
    district_id = create_district(service, slug="riverside", time_zone="America/Chicago")
    name = f"roster_sync:{district_id}:sis"
    source.takes = timedelta(hours=1, minutes=20)  # a slow SIS: the sync ends long after it began

    ran = await runs_until(service, clock, name, datetime(2026, 12, 5, 12, 0, tzinfo=UTC))

    first, nightly = ran[0], ran[1:]
    assert first.date().isoformat() == "2026-11-28"  # a new district's first sync comes at once
    assert [run.date().isoformat() for run in nightly] == [f"2026-11-{day}" for day in (29, 30)] + [
        f"2026-12-0{day}" for day in range(1, 6)
    ]
    # Every night at the same minute, between 02:00 and 02:30, the slow syncs notwithstanding.
    assert len({run.time() for run in nightly}) == 1
    assert all(2 <= run.hour < 3 and run.minute < 30 for run in nightly)


async def test_each_district_has_its_own_delay_within_the_jitter_window(service, clock):
    clock.set(datetime(2026, 11, 28, 18, 0, tzinfo=UTC))
    riverside = create_district(service, slug="riverside", time_zone="America/Chicago")
    oakhill = create_district(service, slug="oakhill", time_zone="America/Chicago")
    await service_scheduler(service, holder="runner").tick()
    clock.advance(minutes=2)
    await service_scheduler(service, holder="runner").tick()

    times = [
        job(service, f"roster_sync:{district}:sis").next_run_at.astimezone(CHICAGO)
        for district in (riverside, oakhill)
    ]

    assert times[0] != times[1]
    for moment in times:
        assert moment.date().isoformat() == "2026-11-29"
        assert 2 <= moment.hour < 3 and moment.minute < 30


async def test_a_run_on_the_spring_forward_day_happens_once(settings, clock, source):
    # 02:30 does not exist in Chicago on 2027-03-14: the clock jumps from 02:00 to 03:00.
    clock.set(datetime(2027, 3, 12, 18, 0, tzinfo=UTC))
    settings.districts["riverside"] = DistrictConfig(
        roster_sources={"sis": RosterSourceConfig(kind="slow", schedule="30 2 * * *")}
    )
    service = serve(settings, clock, source, schedule_jitter_minutes=0)
    try:
        district_id = create_district(service, slug="riverside", time_zone="America/Chicago")
        name = f"roster_sync:{district_id}:sis"

        ran = await runs_until(service, clock, name, datetime(2027, 3, 16, 12, 0, tzinfo=UTC))
    finally:
        service.database.dispose()

    assert [run.isoformat() for run in ran[1:]] == [
        "2027-03-13T02:30:00-06:00",
        "2027-03-14T03:30:00-05:00",  # once, as late as the clock jumped
        "2027-03-15T02:30:00-05:00",
        "2027-03-16T02:30:00-05:00",
    ]


async def test_a_run_on_the_fall_back_day_happens_once(settings, clock, source):
    # 01:30 happens twice in Chicago on 2026-11-01: at 01:30 CDT, and an hour later at 01:30 CST.
    clock.set(datetime(2026, 10, 30, 18, 0, tzinfo=UTC))
    settings.districts["riverside"] = DistrictConfig(
        roster_sources={"sis": RosterSourceConfig(kind="slow", schedule="30 1 * * *")}
    )
    service = serve(settings, clock, source, schedule_jitter_minutes=0)
    try:
        district_id = create_district(service, slug="riverside", time_zone="America/Chicago")
        name = f"roster_sync:{district_id}:sis"

        ran = await runs_until(service, clock, name, datetime(2026, 11, 3, 12, 0, tzinfo=UTC))
    finally:
        service.database.dispose()

    assert [run.isoformat() for run in ran[1:]] == [
        "2026-10-31T01:30:00-05:00",
        "2026-11-01T01:30:00-05:00",  # the first 01:30 only
        "2026-11-02T01:30:00-06:00",
        "2026-11-03T01:30:00-06:00",
    ]


async def test_runs_due_in_the_quiet_hours_wait_for_their_end(settings, clock, source, signing_key):
    clock.set(datetime(2026, 11, 28, 5, 0, tzinfo=UTC))  # 23:00 in Chicago
    service = serve(settings, clock, source, schedule_jitter_minutes=0, quiet_hours="07:00-16:00")
    try:
        district_id = create_district(service, slug="riverside", time_zone="America/Chicago")
        LicenseIssuer(service=service, key=signing_key).write("riverside")
        name = f"license_refresh:{district_id}"

        ran = await runs_until(service, clock, name, datetime(2026, 11, 30, 0, 30, tzinfo=UTC))
    finally:
        service.database.dispose()

    # Every six hours, but noon falls in the quiet hours: that refresh runs at 16:00.
    assert [run.strftime("%d %H:%M") for run in ran[1:]] == [
        "28 00:00",
        "28 06:00",
        "28 16:00",
        "28 18:00",
        "29 00:00",
        "29 06:00",
        "29 16:00",
        "29 18:00",
    ]


async def test_a_new_district_created_in_the_quiet_hours_first_syncs_at_their_end(
    settings, clock, source
):
    clock.set(datetime(2026, 11, 30, 16, 0, tzinfo=UTC))  # 10:00 in Chicago, a school day
    settings.districts["riverside"] = DistrictConfig(
        roster_sources={"sis": RosterSourceConfig(kind="slow")}, quiet_hours="07:00-16:00"
    )
    service = serve(settings, clock, source, schedule_jitter_minutes=0)
    try:
        district_id = create_district(service, slug="riverside", time_zone="America/Chicago")
        scheduler = service_scheduler(service, holder="runner")
        await scheduler.tick()

        clock.advance(hours=5, minutes=59)  # 15:59: still quiet
        ran = {outcome.name for outcome in await scheduler.tick()}
        assert f"roster_sync:{district_id}:sis" not in ran
        assert f"alerts:{district_id}" in ran  # quiet hours hold back only syncs and refreshes

        clock.advance(minutes=1)
        assert f"roster_sync:{district_id}:sis" in {o.name for o in await scheduler.tick()}
    finally:
        service.database.dispose()


async def test_a_failing_sync_retries_with_backoff_but_not_in_the_quiet_hours(
    settings, clock, source
):
    clock.set(datetime(2026, 11, 30, 12, 50, tzinfo=UTC))  # 06:50 in Chicago
    settings.districts["riverside"] = DistrictConfig(
        roster_sources={"sis": RosterSourceConfig(kind="slow")}, quiet_hours="07:00-16:00"
    )
    service = serve(settings, clock, source, schedule_jitter_minutes=0)
    try:
        district_id = create_district(service, slug="riverside", time_zone="America/Chicago")
        name = f"roster_sync:{district_id}:sis"
        scheduler = service_scheduler(service, holder="runner")
        source.failing = True
        await scheduler.tick()
        clock.set(job(service, name).next_run_at)
        await scheduler.tick()

        failed = job(service, name)
        assert failed.consecutive_failures == 1
        assert failed.next_run_at - clock() <= timedelta(minutes=1)  # the first retry, soon

        clock.set(failed.next_run_at)  # 06:52 at the latest
        source.takes = timedelta(minutes=11)  # this attempt fails after 07:00
        await scheduler.tick()
        again = job(service, name)
        assert again.consecutive_failures == 2
        # Its retry would fall in the quiet hours: it waits for their end.
        assert again.next_run_at.astimezone(CHICAGO).strftime("%H:%M") == "16:00"
    finally:
        service.database.dispose()
