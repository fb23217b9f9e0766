"""The alert_raised and alert_resolved hooks: called once per change, after it is committed.

Alerts move through the service's own paths (a roster change, a threshold change, a license
refresh); the notification step then reads the change log and calls the plugins.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from db.models import Alert
from licensing.orchestration.notifications import dispatch_alert_changes, notification_cursor
from licensing.orchestration.plugin_host import load_plugins
from licensing.orchestration.service import LicensingService
from plugins.hookspecs import hookimpl
from plugins.manager import PluginManager
from plugins.records import AlertNotice, DistrictRef
from tests.utils.districts import LicenseIssuer, TestDistrict, students

pytestmark = pytest.mark.anyio

SLUG = "riverside"


class Recorder:
    """Records every notification; a plain hook and an async one, taking different arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, AlertNotice, DistrictRef]] = []

    @hookimpl
    def alert_raised(self, alert: AlertNotice, district: DistrictRef) -> None:
        self.calls.append(("alert_raised", alert, district))

    @hookimpl
    async def alert_resolved(
        self, alert: AlertNotice, district: DistrictRef, settings: Any
    ) -> None:
        assert settings is not None
        self.calls.append(("alert_resolved", alert, district))


class Broken:
    @hookimpl
    def alert_raised(self, alert: AlertNotice) -> None:
        raise RuntimeError("this plugin is broken")

    @hookimpl
    async def alert_resolved(self, alert: AlertNotice) -> None:
        raise RuntimeError("this plugin is broken too")


def plugin_manager(service: LicensingService, *plugins: object) -> PluginManager:
    return load_plugins(service.settings, load_entry_points=False, extra_plugins=plugins)


async def dispatch(service: LicensingService, plugins: Any, **options: Any) -> int:
    return await dispatch_alert_changes(
        database=service.database,
        plugins=plugins,
        settings=service.settings,
        clock=service.clock,
        **options,
    )


async def cross_the_threshold(service: LicensingService, district: TestDistrict) -> Alert:
    """960 of 1000 licenses used with a threshold of 50: LICENSES_LOW is raised."""
    service.apply_roster(
        district.id,
        source="local",
        records=students(60, start=901, prefix=f"{SLUG}-"),
        replace=False,
    )
    return stored_alert(service, "LICENSES_LOW")


def stored_alert(service: LicensingService, kind: str) -> Alert:
    with service.database.read() as session:
        return session.exec(select(Alert).where(Alert.kind == kind)).one()


@pytest.fixture
async def district(make_district: Any) -> TestDistrict:
    return await make_district(SLUG, seats=1000, active=900, threshold=50)


async def test_hook_alert_raised(service, district):
    recorder = Recorder()
    plugins = plugin_manager(service, recorder)
    assert await dispatch(service, plugins) == 0  # nothing raised yet

    alert = await cross_the_threshold(service, district)

    assert await dispatch(service, plugins) == 1
    [(event, notice, ref)] = recorder.calls
    assert event == "alert_raised"
    assert notice == AlertNotice(
        id=alert.id,
        kind="LICENSES_LOW",
        severity="WARNING",
        message=alert.message,
        placements=("DASHBOARD", "LICENSE_BANNER", "SYSTEM_INDICATOR"),
        raised_at=service.clock(),
        resolved_at=None,
        event="alert_raised",
    )
    assert notice.idempotency_key == f"alert_raised:{alert.id}"
    assert ref == DistrictRef(slug=SLUG, official_name="Test District", time_zone="UTC")

    # Already notified: never again, however often the step runs.
    assert await dispatch(service, plugins) == 0
    assert len(recorder.calls) == 1


async def test_hook_alert_raised_by_a_threshold_change(service, district):
    recorder = Recorder()
    plugins = plugin_manager(service, recorder)
    principal = await service.authenticate(district.manager_token)

    change = await service.set_threshold(principal, 150)  # 100 remaining: now below it

    assert change.problems == []
    assert await dispatch(service, plugins) == 1
    assert [(event, notice.kind) for event, notice, _ in recorder.calls] == [
        ("alert_raised", "LICENSES_LOW")
    ]


async def test_hook_alert_resolved(service, district, issuer: LicenseIssuer, clock):
    recorder = Recorder()
    plugins = plugin_manager(service, recorder)
    alert = await cross_the_threshold(service, district)
    assert await dispatch(service, plugins) == 1

    clock.advance(hours=6)
    issuer.write(SLUG, seats=2000)  # a license increase arrives
    await district.refresh_license()

    assert await dispatch(service, plugins) == 1
    assert [(event, notice.id) for event, notice, _ in recorder.calls] == [
        ("alert_raised", alert.id),
        ("alert_resolved", alert.id),
    ]
    resolved = recorder.calls[1][1]
    assert resolved.resolved_at == clock()
    assert resolved.raised_at == clock() - timedelta(hours=6)
    assert resolved.idempotency_key == f"alert_resolved:{alert.id}"
    assert await dispatch(service, plugins) == 0
    assert len(recorder.calls) == 2


async def test_raised_then_resolved_before_the_step_runs_notifies_both_in_order(
    service, district, issuer, clock
):
    recorder = Recorder()
    alert = await cross_the_threshold(service, district)
    clock.advance(minutes=5)
    issuer.write(SLUG, seats=2000)
    await district.refresh_license()

    assert await dispatch(service, plugin_manager(service, recorder)) == 2

    assert [(event, notice.id) for event, notice, _ in recorder.calls] == [
        ("alert_raised", alert.id),
        ("alert_resolved", alert.id),
    ]
    # Both see the alert as stored now.
    assert all(notice.resolved_at == clock() for _, notice, _ in recorder.calls)


async def test_a_failing_plugin_does_not_block_the_others(service, district, issuer, caplog):
    recorder = Recorder()
    plugins = plugin_manager(service, Broken(), recorder)
    alert = await cross_the_threshold(service, district)

    with caplog.at_level(logging.ERROR, logger="plugins.manager"):
        assert await dispatch(service, plugins) == 1

    assert [(event, notice.id) for event, notice, _ in recorder.calls] == [
        ("alert_raised", alert.id)
    ]
    assert "failed in alert_raised" in caplog.text
    assert "this plugin is broken" in caplog.text

    issuer.write(SLUG, seats=2000)
    await district.refresh_license()
    assert await dispatch(service, plugins) == 1
    assert [event for event, _, _ in recorder.calls] == ["alert_raised", "alert_resolved"]
    assert await dispatch(service, plugins) == 0  # the failure does not hold the cursor back


class Crash(BaseException):
    """The process dies between a hook call and the cursor moving past it."""


class CrashAfterNotifying:
    """Wraps the plugin manager: notifies, then dies once, before the step records progress."""

    def __init__(self, plugins: PluginManager) -> None:
        self.plugins = plugins
        self.crashed = False

    async def notify_alert(self, event: str, alert: AlertNotice, district: DistrictRef) -> list:
        failed = await self.plugins.notify_alert(event, alert, district)
        if not self.crashed:
            self.crashed = True
            raise Crash
        return failed


async def test_a_crash_repeats_the_call_with_the_same_idempotency_key(service, district):
    recorder = Recorder()
    crashing = CrashAfterNotifying(plugin_manager(service, recorder))
    await cross_the_threshold(service, district)
    cursor = notification_cursor(service.database)

    with pytest.raises(Crash):
        await dispatch(service, crashing)
    assert notification_cursor(service.database) == cursor

    assert await dispatch(service, crashing) == 1  # at least once: called again
    keys = [notice.idempotency_key for _, notice, _ in recorder.calls]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert notification_cursor(service.database) > cursor
    assert await dispatch(service, crashing) == 0


async def test_dispatch_takes_at_most_a_batch_oldest_first(service, make_district):
    recorder = Recorder()
    plugins = plugin_manager(service, recorder)
    for slug in ("alpha", "beta", "gamma"):
        await make_district(slug, seats=100, active=60, threshold=50)  # 40 remaining: low

    assert await dispatch(service, plugins, batch=2) == 2
    assert await dispatch(service, plugins, batch=2) == 1
    assert [ref.slug for _, _, ref in recorder.calls] == ["alpha", "beta", "gamma"]


async def test_notifications_belong_to_their_district(service, make_district):
    recorder = Recorder()
    await make_district("alpha", seats=1000, active=10)
    await make_district("beta", seats=100, active=60, threshold=50)

    await dispatch(service, plugin_manager(service, recorder))

    [(_, notice, ref)] = recorder.calls
    assert ref.slug == "beta"
    with service.database.read() as session:
        alert = session.get(Alert, notice.id)
    assert alert is not None and alert.kind == notice.kind


async def test_unknown_event_is_refused(service):
    with pytest.raises(ValueError, match="not a notification hook"):
        await plugin_manager(service).notify_alert("alert_deleted", object(), object())
