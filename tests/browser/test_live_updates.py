"""The tab follows licenseChanged and alertsChanged over its websocket, signed in by the session
cookie; only when the socket fails does it poll, and then it says so."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import text
from tests.utils.districts import students

pytestmark = pytest.mark.anyio

# Stands in for a network that refuses websockets: every socket closes before it opens.
NO_WEBSOCKETS = """
window.WebSocket = class {
  constructor() { setTimeout(() => this.onclose && this.onclose({ code: 1006 }), 10); }
  send() {}
  close() {}
};
"""
# Runs the page's timers (the 30-second poll) faster in this tab.
FAST_TIMERS = (
    "const realSetTimeout = window.setTimeout.bind(window);"
    "window.setTimeout = (fn, ms, ...args) => realSetTimeout(fn, Math.min(ms, 200), ...args);"
)


async def test_changes_arrive_live_without_polling(make_district, service, open_tab):
    district = await make_district("livewell", seats=100, active=10, threshold=5)
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    await tab.live()
    page = tab.page
    assert "Live" in await text(page, "#live-status")
    before = await tab.refreshes()

    service.apply_roster(
        district.id, source="local", records=students(90, prefix="more-"), replace=False
    )
    await page.locator("#license-count").filter(has_text="100 / 100").wait_for()
    await page.locator("#alert-banner").filter(has_text="You have used all 100 licenses").wait_for()
    assert "At or over limit" in await text(page, "#usage-level")
    # Only the live message's follow-up read ran: no poll every 30 seconds.
    assert await tab.refreshes() <= before + 2
    await tab.capture("live-at-limit")


async def test_without_websockets_the_page_polls_and_says_so(make_district, service, open_tab):
    district = await make_district("pollster", seats=100, active=10, threshold=5)
    tab = await open_tab()
    page = tab.page
    await page.add_init_script(NO_WEBSOCKETS)
    await page.add_init_script(FAST_TIMERS)
    await tab.sign_in(district.manager_token)
    await page.wait_for_function("() => document.body.dataset.live === 'polling'")
    assert "Live updates are not available" in await text(page, "#live-status")

    service.apply_roster(
        district.id, source="local", records=students(90, prefix="more-"), replace=False
    )
    await page.locator("#license-count").filter(has_text="100 / 100").wait_for()
    await tab.capture("polling-fallback")


async def test_a_message_about_old_figures_goes_when_they_change(
    make_district, issuer, service, open_tab
):
    district = await make_district("settler", seats=1000, active=500, threshold=50)
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    await tab.live()
    page = tab.page
    field = page.get_by_label("Number of Students Remaining to Show Alert")
    await field.fill("75")
    await page.get_by_role("button", name="Save Settings").click()
    await page.get_by_text("Settings saved.").wait_for()

    # The license changes (more seats, through another path): "Settings saved" no longer
    # describes what is on the page, so it goes.
    issuer.write("settler", seats=1100)
    await district.refresh_license()
    await page.locator("#license-count").filter(has_text="500 / 1,100").wait_for()
    await page.wait_for_function(
        "() => document.getElementById('settings-result').textContent === ''"
    )


async def test_polling_sends_the_query_by_hash_and_reuses_a_304(make_district, service, open_tab):
    district = await make_district("etag", seats=100, active=10, threshold=5)
    tab = await open_tab()
    page = tab.page
    await page.add_init_script(NO_WEBSOCKETS)
    await page.add_init_script(FAST_TIMERS)
    answers: list[tuple[str, int, str, str | None]] = []

    # Synchronous on purpose: the tab keeps polling until its page closes, and an
    # asynchronous listener still awaiting a closed page's headers would raise into
    # whichever test next uses this worker's browser. The tab sets If-None-Match itself,
    # so the request's own headers carry it.
    def note(response: Any) -> None:
        if "/graphql" in response.url:
            sent = response.request.headers
            answers.append(
                (response.request.method, response.status, response.url, sent.get("if-none-match"))
            )

    page.on("response", note)
    await tab.sign_in(district.manager_token)
    await page.wait_for_function("() => Number(document.body.dataset.refreshes) >= 4")

    queries = [answer for answer in answers if answer[0] == "GET"]
    assert queries and all(
        "persistedQuery" in url and "query=" not in url for _m, _s, url, _e in queries
    )
    assert [status for _m, status, _u, _e in queries][:1] == [200]
    assert any(status == 304 and etag for _m, status, _u, etag in queries)
    assert await text(page, "#license-count") == "10 / 100"
    # A change reaches the tab with the next poll: a 200 with a new ETag.
    service.apply_roster(
        district.id, source="local", records=students(90, prefix="more-"), replace=False
    )
    await page.locator("#license-count").filter(has_text="100 / 100").wait_for()
