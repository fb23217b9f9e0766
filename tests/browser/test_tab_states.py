"""Every state of the Licensing tab says in plain words what happened and what to do next, with
no internal code, path, SQL or parser text, and passes axe-core at a desktop and a phone size
(Tab.capture in conftest.py, which also writes STATE-1280x900.png and STATE-390x844.png)."""

from __future__ import annotations

from typing import Any

import pytest

from licensing.settings import DistrictConfig, RosterSourceConfig
from tests.browser.conftest import internal_text_found, text
from tests.utils.districts import TestDistrict, create_district, students
from tests.utils.oneroster_bundle import write_users_bundle

pytestmark = pytest.mark.anyio


async def test_no_license_yet_says_so_and_force_update_brings_it_in(service, issuer, open_tab):
    district = TestDistrict(service, create_district(service, slug="newtown"), "newtown")
    service.apply_roster(district.id, source="local", records=students(12), replace=True)
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page

    note = await text(page, "#no-license")
    assert "No license yet" in note and "Force License Update" in note
    assert not await page.locator("#facts").is_visible()
    assert "Could not refresh" not in await text(page, "body")
    assert await text(page, "#page-status") == ""  # a normal state, not a failed refresh
    assert "12 active students" in await text(page, "#usage-breakdown")
    assert await page.get_by_label("Number of Students Remaining to Show Alert").is_disabled()
    assert "once your district's license has arrived" in await text(page, "#threshold-recommended")
    await tab.capture("no-license-yet")

    # The license arrives: Force License Update brings it in and the figures appear.
    issuer.write("newtown", seats=1200)
    await page.get_by_role("button", name="Force License Update").click()
    await page.locator("#license-count").filter(has_text="12 / 1,200").wait_for()
    assert not await page.locator("#no-license").is_visible()
    await page.locator("#threshold-input:enabled").wait_for()


async def test_a_held_sync_is_said_with_what_to_do(
    make_district, service, settings, open_tab, tmp_path, clock
):
    export = tmp_path / "export"
    settings.districts["heldtown"] = DistrictConfig(
        roster_sources={
            "sis": RosterSourceConfig(kind="oneroster_csv", options={"path": str(export)})
        }
    )
    district = await make_district("heldtown", seats=1000)
    write_users_bundle(export, active=960)
    await service.roster_sync.sync(district_id=district.id, source="sis", actor="test")
    write_users_bundle(export, active=400)  # a broken export: most students gone
    clock.advance(hours=1)
    await service.roster_sync.sync(district_id=district.id, source="sis", actor="test")

    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    note = await text(page, "#roster-note")
    assert "held for an administrator's confirmation" in note
    assert "November 28, 2026" in note  # the district's time zone, in words
    assert await text(page, "#license-count") == "960 / 1,000"
    await tab.capture("sync-held")


async def test_a_stale_license_says_the_figures_are_the_last_good_ones(
    make_district, service, open_tab
):
    district = await make_district("staleton", seats=1000, active=300)
    service.settings.license_file_for("staleton").unlink()
    await service.license_updater.refresh(district_id=district.id, actor="scheduler")

    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    note = await text(tab.page, "#stale-note")
    assert "last figures it confirmed" in note
    assert "contact Manage1to1 Support" in note
    await tab.capture("stale-license")


async def test_an_inactive_license_says_to_contact_support(make_district, open_tab):
    district = await make_district("idle", seats=500, active=100, deactivated=True)
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    assert "Inactive" in await text(page, "#status-badge")
    assert "deactivated" in await text(page, "#status-guidance")
    banner = await text(page, "#alert-banner")
    assert "until Manage1to1 Support reactivates your license" in banner
    assert "drops below your threshold" not in banner
    await tab.capture("inactive")


async def test_over_the_limit_within_the_allowance(make_district, open_tab):
    district = await make_district("overton", seats=100, active=110, overage_allowance=0.2)
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    assert await text(page, "#license-count") == "110 / 100"
    assert "Over the limit by 10 licenses" in await text(page, "#license-remaining")
    assert "At or over limit" in await text(page, "#usage-level")
    banner = await text(page, "#alert-banner")
    assert "back within your licensed seats" in banner
    assert not await page.locator("#restricted-note").is_visible()
    await tab.capture("over-limit")


async def test_restricted_access_is_said_with_what_to_do(make_district, open_tab):
    district = await make_district("tightly", seats=1000, active=1500)
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    note = await text(page, "#restricted-note")
    assert "restricted" in note and "Purchase additional licenses" in note
    assert "over your limit of 1,000" in await text(page, "#alert-banner")
    await tab.capture("restricted")


async def test_at_the_limit(make_district, open_tab):
    district = await make_district("fullton", seats=100, active=100)
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    assert "At or over limit" in await text(page, "#usage-level")
    banner = await text(page, "#alert-banner")
    assert "students who have left are disabled" in banner
    await tab.capture("limit-reached")


async def test_server_failures_reach_the_page_only_in_plain_words(make_district, open_tab):
    district = await make_district("oddity", seats=1000, active=10)
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page

    # A refresh answered with GraphQL's own error text (a path, an exception, a code): the
    # page says something plain instead, with the request id for Support.
    async def broken(route: Any) -> None:
        await route.fulfill(
            status=200,
            content_type="application/json",
            headers={"X-Request-ID": "req-12345"},
            body='{"data": null, "errors": [{"message": "ValueError at /srv/app/db.py: '
            'SELECT * FROM license", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}',
        )

    await page.route("**/graphql?*", broken)
    await page.get_by_role("button", name="Refresh now").click()
    status = page.locator("#page-status")
    await status.filter(has_text="Something went wrong on our side").wait_for()
    assert "Reference: req-12345" in await status.inner_text()
    assert internal_text_found(await text(page, "body")) == []
    await tab.capture("refresh-failed")
