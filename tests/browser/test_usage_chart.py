"""The Licensing tab's "Usage over time" chart in a real browser: a year of daily snapshots taken
by the service on the injected clock, drawn at desktop and phone sizes, read as a table by
keyboard. Each state goes through Tab.capture (conftest.py: axe-core, the internal-text check, no
sideways overflow, screenshots chart-*-1280x900.png and chart-*-390x844.png); the chart's card
alone is also kept as chart-desktop.png and chart-phone.png."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from licensing.storage.roster_changes import apply_roster
from tests.browser.conftest import Tab, save_screenshot, text
from tests.utils.districts import students

pytestmark = pytest.mark.anyio

TODAY = date(2026, 11, 28)  # the FakeClock's day
FIRST_DAY = TODAY - timedelta(days=364)  # 2025-11-29: a year of daily counts, today included
RECENT_SWING = (0, 2, -1, 1, -2, 0, 1)  # day-to-day unevenness of the last five weeks


def active_on(day: date) -> int:
    """The district's year: slow growth to June, a summer dip, an intake, growth to today."""
    if day <= date(2026, 6, 12):  # 900 on 2025-11-29, +1 every 5 days: 940 on 2026-06-12
        return 900 + (day - FIRST_DAY).days // 5
    if day <= date(2026, 8, 24):  # summer: 50 leave
        return 890
    # The intake on 2026-08-25, then 3 more every 8 days: 960 today.
    count = 925 + (day - date(2026, 8, 25)).days * 3 // 8
    if (TODAY - day).days < 35:
        count += RECENT_SWING[(TODAY - day).days % len(RECENT_SWING)]
    return count


async def district_with_a_year_of_history(make_district, service, clock) -> Any:
    """Riverside, 1000 licenses, threshold 50; one snapshot a day for a year through the
    service's daily job, the roster changed on the days its count changes: the students who
    join are added, those who leave are updated as withdrawn (only the day's change is sent)."""
    clock.set(datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, 15, 0, tzinfo=UTC))
    district = await make_district("riverside", seats=1000, active=active_on(FIRST_DAY))
    current = active_on(FIRST_DAY)
    for offset in range(365):
        day = FIRST_DAY + timedelta(days=offset)
        clock.set(datetime(day.year, day.month, day.day, 15, 0, tzinfo=UTC))
        if active_on(day) != current:
            joined, left = max(current, active_on(day)), min(current, active_on(day))
            status = "active" if active_on(day) > current else "withdrawn"
            current = active_on(day)
            with service.database.write() as session:
                apply_roster(
                    session,
                    district_id=district.id,
                    source="local",
                    records=students(
                        joined - left, start=left + 1, prefix="riverside-", status=status
                    ),
                    replace=False,
                    now=clock(),
                )
        await service.take_usage_snapshot(district.id)
    assert clock().date() == TODAY
    return district


async def open_chart(tab: Tab, token: str) -> Any:
    await tab.sign_in(token)
    chart = tab.page.locator("#usage-over-time")
    await chart.locator("svg[role='img']").wait_for()
    return chart


async def table_rows(chart: Any) -> int:
    return await chart.locator("table tbody tr").count()


async def test_a_year_of_usage_at_desktop_and_phone_size(make_district, service, clock, open_tab):
    # One year of history (the slow part) serves both sizes.
    district = await district_with_a_year_of_history(make_district, service, clock)
    await a_year_at_desktop_size(district, open_tab)
    await a_year_at_phone_size(district, open_tab)


async def a_year_at_desktop_size(district: Any, open_tab: Any) -> None:
    tab = await open_tab(width=1280, height=900)
    page = tab.page
    chart = await open_chart(tab, district.manager_token)

    svg = chart.locator("svg[role='img']")
    summary = await svg.get_attribute("aria-label")
    assert summary is not None
    assert summary.startswith("Active students rose from 900 to 960 over the year;"), summary
    assert re.search(
        r"at this rate all 1,000 licenses are in use around \w+ \d{1,2}, 202\d "
        r"\(likely between \w+ \d{1,2}, 202\d and \w+ \d{1,2}, 202\d\)",
        summary,
    ), summary
    assert summary.endswith("alerts begin at 950 active students.")
    assert await text(page, "#usage-over-time .chart-summary") == summary
    legend = await text(page, "#usage-over-time .chart-legend")
    for words in ("solid line", "dash-dot line", "hatched", "dashed line", "dotted edges"):
        assert words in legend
    assert "Licensed total: 1,000" in (await svg.text_content() or "")
    assert await chart.get_by_role("button", name="1 year").get_attribute("aria-pressed") == "true"
    await save_screenshot(chart, "chart-desktop")
    await tab.capture("chart-year")

    # The table, by keyboard: 365 daily rows, then 25 weekly forecast rows (days 7 .. 175).
    toggle = chart.get_by_role("button", name="Show as table")
    assert await toggle.get_attribute("aria-expanded") == "false"
    await toggle.focus()
    await page.keyboard.press("Enter")
    table = chart.get_by_role("table")
    await table.wait_for()
    assert await chart.get_by_role("button", name="Hide table").get_attribute("aria-expanded") == (
        "true"
    )
    assert await table_rows(chart) == 365 + 25
    first = await chart.locator("table tbody tr").first.inner_text()
    assert first.split("\t")[:3] == ["November 29, 2025", "900", "1,000"]
    week = (await chart.locator("table tbody tr").nth(365).inner_text()).split("\t")
    assert week[0] == "December 5, 2026"  # today + 7 days
    assert week[2] == "1,000"
    assert re.fullmatch(r"9\d\d", week[3]), week
    assert re.fullmatch(r"9\d\d\N{EN DASH}9\d\d", week[4]), week
    await tab.check_accessible("the chart's table")

    # 90 days, by keyboard: Space on the range button; 90 daily rows, 6 forecast rows (7 .. 42).
    await chart.get_by_role("button", name="90 days").focus()
    await page.keyboard.press("Space")
    await page.wait_for_function(
        "() => document.querySelector('#usage-over-time .chart-range[aria-pressed=true]')"
        ".textContent.includes('90 days')"
    )
    assert await table_rows(chart) == 90 + 6
    assert (await svg.get_attribute("aria-label") or "").startswith(
        "Active students rose from 927 to 960 over the last 90 days;"
    )
    await save_screenshot(chart, "chart-desktop-90-days")
    await page.keyboard.press("Tab")  # focus moves on from the range buttons, nothing traps it
    await tab.check_accessible("the chart's 90 days with its table")
    await chart.get_by_role("button", name="Hide table").press("Enter")
    assert await table.is_hidden()


async def a_year_at_phone_size(district: Any, open_tab: Any) -> None:
    tab = await open_tab(width=390, height=844)
    page = tab.page
    chart = await open_chart(tab, district.manager_token)

    # The chart fills the card's width and no more: nothing scrolls sideways.
    box = await chart.locator("svg[role='img']").bounding_box()
    card = await chart.bounding_box()
    assert box is not None and card is not None
    assert card["width"] - 40 < box["width"] <= card["width"]
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    assert "Threshold: alerts begin at 950" in (
        await chart.locator("svg[role='img']").text_content() or ""
    )
    await save_screenshot(chart, "chart-phone")
    # axe-core ran on these states at the desktop size: its rules do not depend on the width.
    await tab.check_accessible("the chart on a phone", axe=False)

    await chart.get_by_role("button", name="Show as table").press("Enter")
    assert await table_rows(chart) == 365 + 25
    await tab.check_accessible("the chart's table on a phone", axe=False)

    # A View License session cannot read the threshold: no band, and no word of it.
    viewer = await open_tab(width=390, height=844)
    viewer_chart = await open_chart(viewer, district.viewer_token)
    summary = await viewer_chart.locator("svg[role='img']").get_attribute("aria-label") or ""
    assert summary.startswith("Active students rose from 900 to 960 over the year;")
    assert "alerts begin" not in summary
    assert "hatched" not in await text(viewer.page, "#usage-over-time .chart-legend")
    await viewer.capture("chart-read-only")


async def test_a_new_district_has_not_enough_history_yet(make_district, service, open_tab):
    district = await make_district("new", seats=400, active=10)
    await service.take_usage_snapshot(district.id)  # today's: one day only
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    chart = tab.page.locator("#usage-over-time")

    await chart.get_by_text("Not enough history yet").wait_for()
    assert await chart.locator("svg[role='img']").count() == 0
    assert await chart.get_by_role("button", name="Show as table").is_hidden()
    await tab.capture("chart-not-enough-history")


async def test_the_chart_follows_a_new_license_live(
    make_district, service, issuer, clock, open_tab
):
    district = await make_district("growing", seats=1000, active=960, threshold=50)
    for _day in range(3):
        await service.take_usage_snapshot(district.id)
        clock.advance(days=1)
    await service.take_usage_snapshot(district.id)
    tab = await open_tab()
    chart = await open_chart(tab, district.manager_token)
    await tab.live()
    svg = chart.locator("svg[role='img']")
    assert "Licensed total: 1,000" in (await svg.text_content() or "")

    # More seats arrive (licenseChanged on the websocket): the chart redraws with the new total,
    # without a reload or a poll.
    issuer.write("growing", seats=1200)
    await district.refresh_license()
    await chart.get_by_text("Licensed total: 1,200").wait_for()
    summary = await svg.get_attribute("aria-label") or ""
    assert summary.endswith(
        "the 1,200 licenses are not used up; alerts begin at 1,150 active students."
    )
