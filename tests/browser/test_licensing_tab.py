"""The Licensing tab in a real browser: sign-in, reading the figures, settings, Force License
Update, the banner, read-only sessions and the page's security. The fixtures (one Chromium per
worker, a new context per test, axe-core and the internal-text check of Tab.capture) are in
conftest.py; every state of the page is in test_tab_states.py; live updates in test_live_updates.py.
Screenshots go to tests/browser/artifacts/ as STATE-WIDTHxHEIGHT.png.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from tests.browser.conftest import text
from tests.utils.districts import students

pytestmark = pytest.mark.anyio


# ---------------------------------------------------------------- reading the tab


async def test_sign_in_and_read_the_license(make_district, issuer, open_tab):
    district = await make_district(
        "riverside", seats=1000, active=960, threshold=50, legal_entity_name="Riverside USD No. 7"
    )
    tab = await open_tab()
    page = tab.page
    await page.goto(tab.base_url + "/")
    await page.get_by_label("API token").wait_for()
    await tab.capture("signed-out")

    await page.get_by_label("API token").fill("not-a-token")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_text("not valid or has been revoked").wait_for()

    await tab.sign_in(district.manager_token)
    assert await text(page, "#license-count") == "960 / 1,000"
    assert await text(page, "#license-remaining") == "40 licenses remaining"
    assert "Active" in await text(page, "#status-badge")
    assert await text(page, "#licensed-to") == "Test District"
    assert "Riverside USD No. 7" in await text(page, "#legal-entity")
    assert "August 1, 2023" in await text(page, "#created-at")
    assert "June 30, 2027" in await text(page, "#expires-at")
    assert "days left" in await text(page, "#days-left")
    # The colour has words and an icon, not colour alone.
    level = await text(page, "#usage-level")
    assert "Approaching threshold" in level
    assert await page.locator("#usage-bar").get_attribute("class") == "usage-bar level-yellow"
    assert "960 of 1,000 licenses used" in (
        await page.locator("#usage-bar").get_attribute("aria-valuetext")
    )
    banner = page.get_by_role("region", name="License alerts")
    assert "40 licenses remaining" in await banner.inner_text()
    assert await banner.get_attribute("aria-live") == "polite"
    assert await page.get_by_role("button", name=re.compile("dismiss|close", re.I)).count() == 0
    assert (
        await page.get_by_label("Number of Students Remaining to Show Alert").input_value() == "50"
    )
    assert "Recommended for your district's size" in await text(page, "#threshold-recommended")
    # The header names the district; the sign-in form and its error are gone.
    assert await text(page, "#account-label") == "Test District"
    assert not await page.get_by_label("API token").is_visible()
    await tab.capture("approaching-limit")

    # The session survives a reload (cookie), and the cookie is out of the page's reach.
    await page.reload()
    await page.locator("#license-count").filter(has_text="960 / 1,000").wait_for()
    assert await page.evaluate("document.cookie") == ""
    cookies = await page.context.cookies()
    session = next(cookie for cookie in cookies if cookie["name"] == "__Host-licensing_session")
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    # Secure (as __Host- requires): the browser keeps it even on http://127.0.0.1, loopback.
    assert session["secure"] is True
    assert session["path"] == "/"
    assert district.manager_token not in session["value"]

    # Narrow screen: nothing overflows sideways at 360 px.
    await page.set_viewport_size({"width": 360, "height": 800})
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0

    # Sign out ends the session: the old cookie, put back, signs no one in.
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_label("API token").wait_for()
    # Nothing of the signed-in page stays: not the account, not Sign out.
    assert not await page.locator("#account").is_visible()
    assert not await page.get_by_role("button", name="Sign out").is_visible()
    assert "Signed out." in await text(page, "#page-status")
    assert await page.get_by_label("API token").evaluate("el => el === document.activeElement")
    await page.context.add_cookies([session])
    await page.reload()
    await page.get_by_label("API token").wait_for()
    assert not await page.locator("#tab").is_visible()
    assert not await page.get_by_role("button", name="Sign out").is_visible()


async def test_expired_license_says_what_to_do(make_district, open_tab, clock):
    from datetime import date

    district = await make_district(seats=500, active=100, expires_on=date(2026, 10, 31))
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    assert "Expired" in await text(page, "#status-badge")
    assert "Contact Manage1to1 Support immediately" in await text(page, "#status-guidance")
    assert "expired" in await text(page, "#days-left")
    assert "Contact Manage1to1 Support immediately" in await text(page, "#alert-banner")
    assert "until your license is renewed" in await text(page, "#alert-banner")
    assert "drops below your threshold" not in await text(page, "#alert-banner")
    assert "October 31, 2026" in await text(page, "#alert-banner")
    await tab.capture("expired")


async def test_renewal_guidance_from_90_days_out(make_district, open_tab):
    from datetime import date

    district = await make_district(seats=500, active=100, expires_on=date(2027, 1, 31))
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    guidance = await text(tab.page, "#renewal-guidance")
    assert "Start the renewal conversation" in guidance
    assert "Well below limit" in await text(tab.page, "#usage-level")
    banner = await text(tab.page, "#alert-banner")
    assert "January 31, 2027" in banner and "2027-01-31" not in banner
    assert "reminder stays until your license is renewed" in banner
    await tab.capture("renewal-due")


# ---------------------------------------------------------------- settings and force update


async def test_save_an_invalid_then_a_valid_threshold(make_district, open_tab):
    district = await make_district(seats=1000, active=500, threshold=50)
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    field = page.get_by_label("Number of Students Remaining to Show Alert")

    await field.fill("5000")
    await page.get_by_role("button", name="Save Settings").click()
    error = page.locator("#threshold-error")
    await error.filter(has_text=re.compile(r"\S")).wait_for()
    assert await field.get_attribute("aria-invalid") == "true"
    assert "threshold-error" in (await field.get_attribute("aria-describedby"))
    assert "0 to 1,000" in await text(page, "#threshold-error")
    assert await field.evaluate("el => el === document.activeElement")
    await tab.screenshot("threshold-invalid-1280x900")

    # Past what a GraphQL Int holds: the page refuses it itself, in plain words.
    await field.fill("99999999999")
    await page.get_by_role("button", name="Save Settings").click()
    await error.filter(has_text="0 to 1,000").wait_for()
    assert "represent" not in await text(page, "#threshold-error")
    for bad in ("12.5", "-3", "1e3"):
        await field.fill(bad)
        await page.get_by_role("button", name="Save Settings").click()
        await error.filter(has_text="whole number").wait_for()

    await field.fill("75")
    await page.get_by_role("button", name="Save Settings").click()
    await page.get_by_text("Settings saved.").wait_for()
    assert await error.inner_text() == ""
    assert await field.input_value() == "75"
    assert "75 licenses or fewer" in await text(page, "#settings-result")
    assert await page.locator("#settings-result").evaluate("el => el === document.activeElement")
    await tab.screenshot("threshold-saved-1280x900")

    # The server kept it.
    await page.reload()
    await page.locator("#license-count").filter(has_text="/").wait_for()
    assert await page.get_by_label("Number of Students Remaining to Show Alert").input_value() == (
        "75"
    )


async def test_force_update_twice_is_throttled_the_second_time(make_district, open_tab):
    district = await make_district(seats=1000, active=500)
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    button = page.get_by_role("button", name="Force License Update")
    result = page.locator("#force-result")

    await button.click()
    await result.filter(has_text="already up to date").wait_for()
    assert await result.evaluate("el => el === document.activeElement")
    await tab.screenshot("force-update-up-to-date-1280x900")

    await button.click()
    await result.filter(has_text="Try again in").wait_for()
    assert re.search(r"Try again in \d[\d,]* seconds?", await result.inner_text())
    assert await button.is_enabled()
    await tab.screenshot("force-update-throttled-1280x900")


async def test_force_update_shows_progress_while_it_runs(make_district, open_tab):
    district = await make_district(seats=1000, active=500)
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    release: list[Any] = []

    async def hold(route: Any) -> None:
        body = route.request.post_data or ""
        # The tab sends its documents by hash (docs/caching.md), with their operation's name.
        if "ForceLicenseUpdate" in body:
            release.append(route)
        else:
            await route.continue_()

    await page.route("**/graphql", hold)
    await page.get_by_role("button", name="Force License Update").click()
    busy = page.locator("#force-update[aria-busy='true']")
    await busy.wait_for()
    assert await busy.is_disabled()
    assert "Contacting the Manage1to1 licensing server" in await text(page, "#force-result")
    await tab.screenshot("force-update-in-progress-1280x900")
    for _ in range(100):
        if release:
            break
        await page.wait_for_timeout(50)
    assert release, "the force update request was not sent"
    await release[0].continue_()
    await page.locator("#force-result").filter(has_text="up to date").wait_for()
    await page.locator("#force-update:not([aria-busy])").wait_for()
    assert await page.locator("#force-update").is_enabled()


def is_force_update(request: Any) -> bool:
    return request.method == "POST" and "ForceLicenseUpdate" in (request.post_data or "")


async def test_an_action_is_followed_by_a_read_begun_after_it_not_one_already_under_way(
    make_district, issuer, open_tab
):
    """A read of the tab that left before Force License Update answers shows the figures from
    before it. The page must read again once the update is done; if it took that older read as
    the one "after" the action, the old license came back on screen and the new one, arriving
    live, then cleared "License updated" as a message about figures that had changed."""
    district = await make_district("hillview", seats=1000, active=900)
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    held: list[tuple[Any, Any]] = []
    read_held = asyncio.Event()

    async def answer_later(route: Any) -> None:
        # Queries go as GET, named in the address (docs/caching.md).
        if "LicensingTab" in route.request.url and not held:
            held.append((route, await route.fetch()))  # read now, answered below
            read_held.set()
        else:
            await route.continue_()

    await page.route("**/graphql*", answer_later)
    await page.get_by_role("button", name="Refresh now").click()
    await asyncio.wait_for(read_held.wait(), timeout=10)

    issuer.write("hillview", seats=1250)
    # The update's answer reaches the page, which draws its license and reads the tab again,
    # while the older read is still under way; only then does that read answer, with the
    # figures from before.
    async with page.expect_event("requestfinished", is_force_update):
        await page.get_by_role("button", name="Force License Update").click()
    await page.locator("#license-count").filter(has_text="900 / 1,250").wait_for()
    await page.evaluate("() => new Promise((done) => setTimeout(done))")  # its next task ran
    route, response = held[0]
    await route.fulfill(response=response)

    result = page.locator("#force-result")
    await result.filter(has_text="License updated").wait_for()
    await page.locator("#license-count").filter(has_text="900 / 1,250").wait_for()
    await page.wait_for_timeout(1000)  # the live update of the new license has come and gone
    assert "License updated" in await result.inner_text()
    assert await text(page, "#license-count") == "900 / 1,250"
    # The audit log is read again after the action: its entry is the newest.
    newest = page.locator("#audit-log table tbody tr").first
    assert "Force License Update" in await newest.inner_text()
    await tab.capture("license-updated-after-a-read-under-way")


# ---------------------------------------------------------------- live numbers and the banner


async def test_banner_appears_past_the_threshold_and_goes_when_capacity_rises(
    make_district, issuer, service, open_tab
):
    district = await make_district("hillview", seats=1000, active=900, threshold=50)
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    banner = page.get_by_role("region", name="License alerts")
    assert (await banner.inner_text()).strip() == ""
    assert "Well below limit" in await text(page, "#usage-level")

    # 60 more students enrol: 40 remain, under the threshold of 50.
    service.apply_roster(
        district.id, source="local", records=students(60, prefix="new-"), replace=False
    )
    await tab.refresh()
    await page.locator("#license-count").filter(has_text="960 / 1,000").wait_for()
    await banner.filter(has_text="40 licenses remaining").wait_for()
    assert "Approaching threshold" in await text(page, "#usage-level")
    await tab.screenshot("banner-after-roster-change-1280x900")

    # More licenses are purchased; Force License Update brings them in and the alert goes.
    issuer.write("hillview", seats=1250)
    await page.get_by_role("button", name="Force License Update").click()
    await page.locator("#force-result").filter(has_text="License updated").wait_for()
    await page.locator("#license-count").filter(has_text="960 / 1,250").wait_for()
    await page.wait_for_function(
        "() => document.getElementById('alert-banner').textContent.trim() === ''"
    )
    assert "290 licenses remaining" in await text(page, "#license-remaining")
    await tab.screenshot("banner-gone-after-capacity-rises-1280x900")


async def test_a_roster_that_never_synced_or_failed_is_said_and_the_count_not_coloured(
    make_district, service, settings, open_tab, tmp_path
):
    from licensing.settings import DistrictConfig, RosterSourceConfig

    export = tmp_path / "export"  # the SIS has not delivered its bundle yet
    settings.districts["valley"] = DistrictConfig(
        roster_sources={
            "sis": RosterSourceConfig(kind="oneroster_csv", options={"path": str(export)})
        }
    )
    district = await make_district("valley", seats=1000)
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page

    assert await text(page, "#license-count") == "? / 1,000"
    assert "Count not known yet" in await text(page, "#usage-level")
    assert await page.locator("#usage-bar").get_attribute("class") == "usage-bar level-unknown"
    note = await text(page, "#roster-note")
    assert "Student counts are not known yet" in note and "“sis”" in note
    await (
        page.get_by_role("region", name="License alerts")
        .filter(has_text="has not completed a sync")
        .wait_for()
    )
    await tab.capture("no-roster-yet")

    # The first sync fails: the banner says so, with the reason.
    await service.roster_sync.sync(district_id=district.id, source="sis", actor="scheduler")
    await tab.refresh()
    await page.locator("#roster-note").filter(has_text="has never synced successfully").wait_for()
    assert "not known until every roster source has synced" in await text(
        page, "#license-remaining"
    )
    await tab.capture("first-sync-failed")


# ---------------------------------------------------------------- read-only and accessibility


async def test_view_license_session_is_read_only_with_a_reason(make_district, open_tab):
    district = await make_district(seats=1000, active=960)
    tab = await open_tab()
    await tab.sign_in(district.viewer_token)
    page = tab.page
    assert await text(page, "#license-count") == "960 / 1,000"
    field = page.get_by_label("Number of Students Remaining to Show Alert")
    save = page.get_by_role("button", name="Save Settings")
    force = page.get_by_role("button", name="Force License Update")
    for control in (field, save, force):
        assert await control.is_disabled()
        assert "read-only-reason" in (await control.get_attribute("aria-describedby"))
    reason = await text(page, "#read-only-note")
    assert "Manage Settings permission" in reason
    assert "read-only" in await text(page, "#account-label")
    await tab.capture("read-only")


async def test_cookie_posts_need_the_same_origin(make_district, served):
    district = await make_district(seats=100, active=10)
    async with httpx.AsyncClient(base_url=served) as http:
        signed = await http.post(
            "/session",
            json={"token": district.manager_token},
            headers={"Origin": served},
        )
        assert signed.status_code == 200
        assert signed.json()["permissions"] == ["MANAGE_SETTINGS", "VIEW_LICENSE"]
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie
        # httpx sends a Secure cookie only over https; a browser sends it to loopback too.
        session = signed.cookies["__Host-licensing_session"]
        http.headers["Cookie"] = f"__Host-licensing_session={session}"
        query = {"query": "mutation { setThreshold(studentsRemaining: 10) { errors { code } } }"}

        foreign = await http.post("/graphql", json=query, headers={"Origin": "https://evil.test"})
        assert foreign.status_code == 403
        assert foreign.json()["errors"][0]["extensions"]["code"] == "CSRF"
        missing = await http.post("/graphql", json=query)
        assert missing.status_code == 403

        same = await http.post("/graphql", json=query, headers={"Origin": served})
        assert same.status_code == 200, same.text
        header = await http.post(
            "/graphql", json=query, headers={"X-Requested-With": "licensing-tab"}
        )
        assert header.status_code == 200, header.text

        out = await http.delete("/session", headers={"Origin": served})
        assert out.status_code == 200
        assert (await http.get("/session")).status_code == 401
        after = await http.post("/graphql", json=query, headers={"Origin": served})
        assert after.status_code == 401


CONTRAST_SCRIPT = """
() => {
  const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const c = parse(getComputedStyle(node).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const failures = [];
  for (const el of document.querySelectorAll('body *')) {
    if (!el.offsetParent && getComputedStyle(el).position !== 'fixed') continue;
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const style = getComputedStyle(el);
    const fg = parse(style.color).slice(0, 3);
    const [a, b] = [lum(fg), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) failures.push(`${el.tagName}#${el.id}.${el.className}: ${ratio.toFixed(2)}`);
  }
  return failures;
}
"""

LABELS_SCRIPT = """
() => {
  const problems = [];
  for (const input of document.querySelectorAll('input, select, textarea')) {
    if (!input.labels || input.labels.length === 0) problems.push(`input #${input.id} has no label`);
  }
  for (const button of document.querySelectorAll('button')) {
    if (!button.textContent.trim() && !button.getAttribute('aria-label'))
      problems.push(`button #${button.id} has no accessible name`);
  }
  return problems;
}
"""


async def test_accessibility_basics(make_district, open_tab):
    district = await make_district(seats=1000, active=960)
    tab = await open_tab()
    page = tab.page
    await page.goto(tab.base_url + "/")
    await page.get_by_label("API token").wait_for()
    assert await page.evaluate(LABELS_SCRIPT) == []
    assert await page.evaluate(CONTRAST_SCRIPT) == []

    await tab.sign_in(district.manager_token)
    assert await page.evaluate(LABELS_SCRIPT) == []
    assert await page.evaluate(CONTRAST_SCRIPT) == []
    assert await page.locator("#alert-banner").get_attribute("aria-live") == "polite"
    for result in ("#settings-result", "#force-result"):
        assert await page.locator(result).get_attribute("role") == "status"
    assert await page.get_by_role("progressbar").count() == 1

    # Keyboard: Tab reaches the setting, and the focus ring is visible on it.
    field = page.get_by_label("Number of Students Remaining to Show Alert")
    for _ in range(12):
        await page.keyboard.press("Tab")
        if await field.evaluate("el => el === document.activeElement"):
            break
    assert await field.evaluate("el => el === document.activeElement")
    outline = await field.evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline != "none"
    await page.keyboard.type("0")  # 50 -> 500
    await page.keyboard.press("Enter")
    await page.locator("#settings-result").filter(has_text="Settings saved.").wait_for()
    await tab.screenshot("keyboard-focus-1280x900")


async def test_sign_in_link_uses_the_fragment_once_and_removes_it(make_district, open_tab):
    district = await make_district(seats=1000, active=960)
    tab = await open_tab()
    page = tab.page
    await page.goto(f"{tab.base_url}/#token={district.manager_token}")
    await page.locator("#license-count").filter(has_text="960 / 1,000").wait_for()
    assert district.manager_token not in page.url
    assert "#" not in page.url
    assert not await page.get_by_role("button", name="Save Settings").is_disabled()


async def test_the_page_runs_under_a_policy_that_refuses_inline_script(make_district, open_tab):
    district = await make_district(seats=1000, active=960)
    tab = await open_tab()
    page = tab.page
    response = await page.goto(tab.base_url + "/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    await tab.sign_in(district.manager_token)
    assert tab.violations == []

    # What an injected inline script would do: the browser refuses it and reports it.
    ran = await page.evaluate(
        """() => {
          const script = document.createElement('script');
          script.textContent = 'window.injectedRan = true';
          document.body.append(script);
          return window.injectedRan === true;
        }"""
    )
    assert ran is False
    # Both reports arrive: the securitypolicyviolation event and the console's message.
    for _ in range(100):
        if len(tab.violations) >= 2:
            break
        await page.wait_for_timeout(20)
    assert any(v.startswith("script-src") for v in tab.violations), tab.violations
    assert any(v.startswith("console:") for v in tab.violations), tab.violations
    tab.violations.clear()  # expected here; every other state must report none


async def tab_to(page: Any, target: Any, presses: int = 30, key: str = "Tab") -> None:
    """Press Tab (or ``key``) until ``target`` has the focus, as a keyboard-only user would."""
    for _ in range(presses):
        if await target.evaluate("el => el === document.activeElement"):
            return
        await page.keyboard.press(key)
    assert await target.evaluate("el => el === document.activeElement"), "not reachable by Tab"


async def test_every_action_works_from_the_keyboard(make_district, open_tab):
    district = await make_district(seats=1000, active=960)
    tab = await open_tab()
    page = tab.page
    await page.goto(tab.base_url + "/")
    token = page.get_by_label("API token")
    await tab_to(page, token)
    await page.keyboard.type(district.manager_token)
    await page.keyboard.press("Enter")
    await page.locator("#license-count").filter(has_text="960 / 1,000").wait_for()
    # Focus moves to the page's content once signed in (just after the figures show), so the
    # next Tab goes on from there.
    await page.wait_for_function("() => document.activeElement?.id === 'content'", timeout=5_000)

    force = page.get_by_role("button", name="Force License Update")
    await tab_to(page, force)
    await page.keyboard.press("Enter")
    result = page.locator("#force-result")
    await result.filter(has_text="up to date").wait_for()
    assert await result.evaluate("el => el === document.activeElement")

    refresh = page.get_by_role("button", name="Refresh now")
    count = await tab.refreshes()
    await tab_to(page, refresh)
    await page.keyboard.press("Enter")
    await page.wait_for_function("n => Number(document.body.dataset.refreshes) > n", arg=count)

    # Back up to the header's Sign out.
    await tab_to(page, page.get_by_role("button", name="Sign out"), key="Shift+Tab")
    await page.keyboard.press("Enter")
    await token.wait_for()
    assert await token.evaluate("el => el === document.activeElement")
