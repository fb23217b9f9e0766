"""The Manage Settings panels of the Licensing tab: sync status, count review and audit log. Each
state is checked with Tab.capture (axe-core, no internal text, no sideways overflow, screenshots
at 1280x900 and 390x844); every action is done with the keyboard alone."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import httpx
import pytest

from licensing.settings import DistrictConfig, RosterSourceConfig
from plugins.builtin.oneroster_csv import USERS_V1P1
from tests.browser.conftest import text
from tests.utils.districts import students
from tests.utils.oneroster_bundle import write_users_bundle

pytestmark = pytest.mark.anyio


async def panels_read(page: Any, after: int = 0) -> None:
    await page.wait_for_function(
        "n => Number(document.body.dataset.panelReads || 0) > n", arg=after
    )


async def panel_reads(page: Any) -> int:
    return int(await page.evaluate("Number(document.body.dataset.panelReads || 0)"))


async def held_sync_district(
    make_district: Any, service: Any, settings: Any, tmp_path: Path, clock: Any, **options: Any
) -> Any:
    """A district of 1,000 seats whose source "sis" counted 960 active students, then sent a
    sync of 400 that is held for confirmation."""
    export = tmp_path / "export"
    sis_source(settings, "heldtown", export)
    district = await make_district("heldtown", seats=1000, **options)
    write_users_bundle(export, active=960)
    await service.roster_sync.sync(district_id=district.id, source="sis", actor="test")
    write_users_bundle(export, active=400)
    clock.advance(hours=1)
    await service.roster_sync.sync(district_id=district.id, source="sis", actor="test")
    return district


async def live_panels(open_tab: Any, token: str) -> Any:
    """A tab signed in with ``token``, following changes live, its panels read."""
    tab = await open_tab()
    await tab.sign_in(token)
    await tab.live()
    await panels_read(tab.page)
    return tab


async def threshold_changed_elsewhere(tab: Any, service: Any, token: str, threshold: int) -> None:
    """Another administrator sets the threshold (enough to raise an alert, so that a live
    update comes); wait until the tab and its panels have been read again."""
    reads, refreshes = await panel_reads(tab.page), await tab.refreshes()
    principal = await service.authenticate(token)
    await service.set_threshold(principal, threshold)
    await tab.page.wait_for_function(
        "n => Number(document.body.dataset.refreshes) > n", arg=refreshes
    )
    await panels_read(tab.page, after=reads)


def add_unclassifiable_rows(export: Path, count: int) -> None:
    """Rows without an id: the sync quarantines them."""
    with open(export / "users.csv", "a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        for _ in range(count):
            writer.writerow(["" for _ in USERS_V1P1])


def sis_source(settings: Any, slug: str, export: Path) -> None:
    settings.districts[slug] = DistrictConfig(
        roster_sources={
            "sis": RosterSourceConfig(kind="oneroster_csv", options={"path": str(export)})
        }
    )


async def test_a_view_license_session_sees_a_plain_note_instead_of_the_panels(
    make_district, open_tab
):
    district = await make_district("riverside", active=10)
    tab = await open_tab()
    await tab.sign_in(district.viewer_token)
    page = tab.page
    assert await page.locator("#panels").is_hidden()
    assert "need the Manage Settings permission" in await text(page, "#panels-note")
    await tab.capture("panels-read-only")


async def test_no_roster_source_and_a_healthy_license_refresh(make_district, open_tab):
    district = await make_district("riverside", active=10)
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    await panels_read(page)
    status = await text(page, "#sync-status-body")
    # The district's time zone (UTC here) in words, with the outcome.
    assert "Last refresh November 28, 2026 at 3:00 PM UTC: updated" in status
    assert "no roster source syncs them" in status
    await tab.capture("panels-no-sources")


async def test_a_source_with_quarantined_rows_shows_them(
    make_district, service, settings, open_tab, tmp_path
):
    export = tmp_path / "export"
    sis_source(settings, "riverside", export)
    district = await make_district("riverside", seats=1000)
    write_users_bundle(export, active=500)
    add_unclassifiable_rows(export, 3)
    await service.roster_sync.sync(district_id=district.id, source="sis", actor="test")

    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    await panels_read(page)
    source = page.locator("[data-source=sis]")
    assert "Up to date" in await text(page, "[data-source=sis]")
    assert "500 active students" in await text(page, "[data-source=sis]")
    summary = source.locator("summary").filter(has_text="quarantined row")
    assert "3 quarantined rows" in await summary.inner_text()
    await summary.focus()
    await page.keyboard.press("Enter")  # opens the sample by keyboard
    assert await source.locator("details[open] li").count() >= 1
    await tab.capture("panels-quarantined")


async def test_a_held_sync_is_applied_after_a_confirmation_stating_the_change(
    make_district, service, settings, open_tab, tmp_path, clock
):
    district = await held_sync_district(make_district, service, settings, tmp_path, clock)

    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    await panels_read(page)
    assert "Sync held" in await text(page, "[data-source=sis]")
    await tab.capture("panels-held")

    # Cancel first: nothing changes, focus returns to the button.
    await page.get_by_role("button", name="Apply held sync…").focus()
    await page.keyboard.press("Enter")
    question = await text(page, ".confirm-question:visible")
    assert question == (
        "Apply: 400 active students from “sis” (\N{MINUS SIGN}560). The license count changes at once."
    )
    await tab.capture("panels-held-confirm")
    await page.keyboard.press("Tab")  # to Cancel
    await page.keyboard.press("Enter")
    focused = await page.evaluate("document.activeElement.textContent")
    assert focused == "Apply held sync…"
    assert await text(page, "#license-count") == "960 / 1,000"

    await page.keyboard.press("Enter")
    await page.keyboard.press("Enter")  # Apply has the focus
    result = page.locator("#sync-status-result")
    await result.filter(has_text="was applied").wait_for()
    assert "Your license count is now 400 / 1,000" in await result.inner_text()
    assert await page.evaluate("document.activeElement.id") == "sync-status-result"
    await page.locator("#license-count").filter(has_text="400 / 1,000").wait_for()
    assert "Up to date" in await text(page, "[data-source=sis]")
    await tab.capture("panels-held-applied")


async def test_a_held_sync_is_discarded_after_a_confirmation_and_the_count_stays(
    make_district, service, settings, open_tab, tmp_path, clock
):
    district = await held_sync_district(make_district, service, settings, tmp_path, clock)

    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    await panels_read(page)
    await page.get_by_role("button", name="Discard held sync…").focus()
    await page.keyboard.press("Enter")
    assert await text(page, ".confirm-question:visible") == (
        "Discard: keep 960 active students from “sis” (no change). "
        "The source's next sync is checked again."
    )
    await tab.capture("panels-held-discard-confirm")
    await page.keyboard.press("Enter")  # Discard has the focus
    result = page.locator("#sync-status-result")
    await result.filter(has_text="was discarded").wait_for()
    assert "Your license count stays 960 / 1,000" in await result.inner_text()
    assert await page.evaluate("document.activeElement.id") == "sync-status-result"
    await page.locator("[data-source=sis]").filter(has_text="Up to date").wait_for()
    assert await text(page, "#license-count") == "960 / 1,000"
    await page.locator("#audit-rows tr").first.filter(has_text="Held sync discarded").wait_for()
    await tab.capture("panels-held-discarded")


async def test_a_live_update_leaves_an_open_confirmation_and_its_focus_where_they_were(
    make_district, service, settings, open_tab, tmp_path, clock
):
    district = await held_sync_district(
        make_district, service, settings, tmp_path, clock, threshold=30
    )

    tab = await live_panels(open_tab, district.manager_token)
    page = tab.page
    await page.get_by_role("button", name="Discard held sync…").focus()
    await page.keyboard.press("Enter")
    await page.locator(".confirm-question:visible").wait_for()
    # Another administrator changes the threshold: the sync status, unchanged, stays as the
    # administrator left it.
    await threshold_changed_elsewhere(tab, service, district.manager_token, 80)
    assert "Discard: keep 960 active students" in await text(page, ".confirm-question:visible")
    assert await page.evaluate("document.activeElement.textContent") == "Discard"
    await page.keyboard.press("Enter")
    await page.locator("#sync-status-result").filter(has_text="was discarded").wait_for()


async def test_when_a_live_update_changes_the_review_the_focus_stays_on_the_same_student(
    make_district, service, open_tab
):
    district = await make_district(
        "riverside", active=20, roster=students(3, prefix="T", username="test-student")
    )
    tab = await live_panels(open_tab, district.manager_token)
    page = tab.page
    group = page.locator(".review-group[data-reason=TEST_ACCOUNT]")
    await group.get_by_label("T000002 (local roster)").focus()
    await page.keyboard.press("Space")

    # One more test account arrives: the review is drawn again with four.
    service.apply_roster(
        district.id,
        source="local",
        records=students(1, prefix="U", username="test-late"),
        replace=False,
    )
    await group.filter(has_text="4 students (4 records)").wait_for()
    assert await page.evaluate("document.activeElement.value") == "T000002"
    assert await group.get_by_label("T000002 (local roster)").is_checked()


async def test_a_live_update_leaves_the_reactivation_confirmation_open(
    make_district, service, open_tab, served
):
    district = await make_district("riverside", seats=30, active=20, threshold=5)
    await deactivate_through_the_api(served, district.manager_token, ["riverside-000001"])
    tab = await live_panels(open_tab, district.manager_token)
    page = tab.page
    listed = page.locator("#deactivated-body")
    await listed.get_by_label("riverside-000001").check()
    await page.get_by_role("button", name="Reactivate 1 student…").click()
    question = "Reactivate 1 student: 20 active students (+1)."
    assert await text(page, ".confirm-question:visible") == question
    await threshold_changed_elsewhere(tab, service, district.manager_token, 15)  # 11 remaining
    assert await text(page, ".confirm-question:visible") == question
    assert await page.evaluate("document.activeElement.textContent") == "Reactivate"
    assert await listed.get_by_label("riverside-000001").is_checked()


async def test_review_groups_csv_and_deactivation_with_its_audit_entry(
    make_district, open_tab, served
):
    testers = students(3, prefix="T", username="test-student")
    district = await make_district("riverside", active=20, roster=testers)
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    await panels_read(page)
    group = page.locator(".review-group[data-reason=TEST_ACCOUNT]")
    assert "3 students (3 records); fixing them frees 3 licenses." in await text(
        page, ".review-group[data-reason=TEST_ACCOUNT]"
    )
    assert await group.get_by_label("T000001 (local roster)").count() == 1
    await tab.capture("panels-review")

    # The CSV link downloads the active students with the session's cookie.
    async with page.expect_download() as waiting:
        await page.get_by_role("link", name="Download active students (CSV)").click()
    download = await waiting.value
    with open(await download.path(), encoding="utf-8") as downloaded:
        rows = list(csv.reader(downloaded))
    assert len(rows) == 1 + 23

    # Nothing selected: the page says so and nothing is sent.
    await group.get_by_role("button", name="Deactivate selected…").click()
    assert "Select at least one student" in await text(
        page, "#count-review-body .review-group .field-error"
    )

    # Select two by keyboard, confirm: the confirmation states the new count.
    for name in ("T000001 (local roster)", "T000002 (local roster)"):
        await group.get_by_label(name).focus()
        await page.keyboard.press("Space")
    await group.get_by_role("button", name="Deactivate selected…").focus()
    await page.keyboard.press("Enter")
    assert await text(page, ".confirm-question:visible") == (
        "Deactivate 2 students: 21 active students (\N{MINUS SIGN}2)."
    )
    await tab.capture("panels-deactivate-confirm")
    await page.keyboard.press("Enter")
    result = page.locator("#count-review-result")
    await result.filter(has_text="deactivated").wait_for()
    assert "2 students deactivated. Your district now has 21 active students" in (
        await result.inner_text()
    )
    await page.locator("#license-count").filter(has_text="21 / 1,000").wait_for()
    await page.locator("#audit-rows tr").first.filter(has_text="Students deactivated").wait_for()
    await tab.capture("panels-deactivated")

    # They are listed as deactivated, with their own confirmation to reactivate them.
    listed = page.locator("#deactivated-body")
    await listed.filter(has_text="2 deactivated local students").wait_for()
    for name in ("T000001", "T000002"):
        await listed.get_by_label(name).check()
    await page.get_by_role("button", name="Reactivate 2 students…").click()
    assert await text(page, ".confirm-question:visible") == (
        "Reactivate 2 students: 23 active students (+2)."
    )
    await page.get_by_role("button", name="Reactivate", exact=True).click()
    await result.filter(has_text="reactivated").wait_for()
    await page.locator("#license-count").filter(has_text="23 / 1,000").wait_for()
    await listed.filter(has_text="No local-roster student is deactivated").wait_for()

    # The download needs a session: without one it is refused, nothing leaks.
    async with httpx.AsyncClient() as client:
        refused = await client.get(served + "/reports/active-students.csv")
    assert refused.status_code == 401


async def test_the_audit_log_filters_by_kind_and_day_and_pages_both_ways(
    make_district, open_tab, clock, served
):
    district = await make_district("riverside", active=10, time_zone="America/Chicago")
    # Twelve threshold saves, one a day from November 28 (in Chicago).
    async with httpx.AsyncClient(base_url=served) as client:
        for value in range(12):
            saved = await client.post(
                "/graphql",
                headers={"Authorization": f"Bearer {district.manager_token}"},
                json={
                    "query": f"mutation {{ setThreshold(studentsRemaining: {20 + value}) {{ errors {{ code }} }} }}"
                },
            )
            assert saved.json()["data"]["setThreshold"]["errors"] == []
            clock.advance(days=1)
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    await panels_read(page)
    rows = page.locator("#audit-rows tr")
    assert await rows.count() == 10
    assert await text(page, "#audit-status") == "Showing 10 entries, newest first."

    await page.get_by_label("Kind").select_option(label="Alert threshold saved")
    await page.get_by_role("button", name="Show entries").click()
    await page.locator("#audit-status").filter(has_text="match the filter").wait_for()
    assert await page.evaluate("document.activeElement.id") == "audit-status"
    assert "December 9, 2026" in await text(page, "#audit-rows tr:first-child")
    assert "30 → 31" in await text(page, "#audit-rows tr:first-child")
    await tab.capture("panels-audit-filtered")

    # Older: the last two saves; Newer: back to the first page.
    await page.get_by_role("button", name="Older →").click()
    await page.locator("#audit-rows tr").first.filter(has_text="November 29, 2026").wait_for()
    assert await rows.count() == 2
    assert await page.get_by_role("button", name="Older →").is_disabled()
    await page.get_by_role("button", name="← Newer").click()
    await page.locator("#audit-rows tr").first.filter(has_text="December 9, 2026").wait_for()
    assert await rows.count() == 10
    assert await page.get_by_role("button", name="← Newer").is_disabled()

    # One day, by the district's calendar.
    await page.get_by_label("From", exact=True).fill("2026-12-01")
    await page.get_by_label("To", exact=True).fill("2026-12-02")
    await page.get_by_role("button", name="Show entries").click()
    await page.locator("#audit-status").filter(has_text="Showing 2 entries").wait_for()
    await tab.capture("panels-audit-days")

    # A "to" before the "from": said in words, focus on the field, nothing read.
    await page.get_by_label("To", exact=True).fill("2026-11-30")
    await page.get_by_role("button", name="Show entries").click()
    assert "before the “from” day" in await text(page, "#audit-filter-error")
    assert await page.evaluate("document.activeElement.id") == "audit-until"
    await tab.capture("panels-audit-bad-days")

    await page.get_by_label("Kind").select_option(label="API token revoked")
    await page.get_by_label("To", exact=True).fill("")
    await page.get_by_role("button", name="Show entries").click()
    await page.locator("#audit-status").filter(has_text="No entries match").wait_for()
    await tab.capture("panels-audit-empty")


async def deactivate_through_the_api(served: str, token: str, ids: list[str]) -> None:
    async with httpx.AsyncClient(base_url=served) as client:
        answer = await client.post(
            "/graphql",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "query": "mutation($ids: [String!]!) { deactivateStudents(ids: $ids) { changed errors { code } } }",
                "variables": {"ids": ids},
            },
        )
    assert answer.json()["data"]["deactivateStudents"] == {"changed": len(ids), "errors": []}


async def test_after_a_reload_deactivated_students_are_listed_and_reactivated(
    make_district, open_tab, served
):
    testers = students(
        3,
        prefix="T",
        username="test-student",
        given_name="Test",
        family_name="Student",
        grade="9",
        primary_school="North High",
        schools=("North High",),
    )
    district = await make_district("riverside", active=150, roster=testers)
    # Deactivated earlier, elsewhere: 25 of them, more than the list's first page.
    await deactivate_through_the_api(
        served, district.manager_token, [f"riverside-{n:06d}" for n in range(1, 26)]
    )
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    await panels_read(page)
    group = page.locator(".review-group[data-reason=TEST_ACCOUNT]")
    for name in ("T000001 (local roster)", "T000002 (local roster)"):
        await group.get_by_label(name).check()
    await group.get_by_role("button", name="Deactivate selected…").click()
    await page.get_by_role("button", name="Deactivate", exact=True).click()
    await page.locator("#count-review-result").filter(has_text="deactivated").wait_for()
    await page.locator("#license-count").filter(has_text="126 / 1,000").wait_for()

    # A reload forgets nothing: the list comes from the server.
    await page.reload()
    await page.wait_for_function("() => (document.body.dataset.refreshes || 0) > 0")
    await panels_read(page)
    listed = page.locator("#deactivated-body")
    assert "27 deactivated local students" in await text(page, "#deactivated-body")
    assert await listed.locator("li").count() == 20
    await tab.capture("panels-deactivated-list")

    # Show more, by keyboard: the rest, and focus on the first student added.
    await page.get_by_role("button", name="Show more (7 not shown)").focus()
    await page.keyboard.press("Enter")
    await listed.locator("li").nth(26).wait_for()
    assert await listed.locator("li").count() == 27
    assert await page.evaluate("document.activeElement.type") == "checkbox"
    assert not await listed.get_by_role("button", name="Show more").count()

    # Shown as name (id) · school · grade.
    student = listed.get_by_label("Test Student (T000002) · North High · grade 9")
    await student.focus()
    await page.keyboard.press("Space")
    await page.get_by_role("button", name="Reactivate 1 student…").focus()
    await page.keyboard.press("Enter")
    assert await text(page, ".confirm-question:visible") == (
        "Reactivate 1 student: 127 active students (+1)."
    )
    await tab.capture("panels-reactivate-confirm")
    await page.keyboard.press("Enter")  # Reactivate has the focus
    result = page.locator("#count-review-result")
    await result.filter(has_text="reactivated").wait_for()
    assert "1 student reactivated. Your district now has 127 active students" in (
        await result.inner_text()
    )
    assert await page.evaluate("document.activeElement.id") == "count-review-result"
    await page.locator("#license-count").filter(has_text="127 / 1,000").wait_for()
    await listed.filter(has_text="26 deactivated local students").wait_for()
    assert not await listed.get_by_label("T000002").count()
    await page.locator("#audit-rows tr").first.filter(has_text="Students reactivated").wait_for()
    await tab.capture("panels-reactivated")


async def test_deactivating_by_typed_ids_refuses_an_unknown_id_then_deactivates(
    make_district, open_tab
):
    testers = students(3, prefix="T", username="test-student")
    district = await make_district("riverside", active=20, roster=testers)
    tab = await open_tab()
    await tab.sign_in(district.manager_token)
    page = tab.page
    await panels_read(page)
    field = page.get_by_label("Local-roster student ids")
    error = page.locator("#deactivate-ids-error")

    # Nothing typed: said next to the box, nothing sent.
    await page.get_by_role("button", name="Deactivate these students…").click()
    assert await error.inner_text() == "Enter at least one student id."
    assert await field.get_attribute("aria-invalid") == "true"

    # An id that is not in the local roster: refused, named, nothing changes.
    await field.fill("T000001,  NOBODY-9")
    await page.keyboard.press("Tab")  # to the button
    await page.keyboard.press("Enter")
    assert await text(page, ".confirm-question:visible") == (
        "Deactivate 2 students: 21 active students (\N{MINUS SIGN}2)."
    )
    await page.keyboard.press("Enter")  # Deactivate has the focus
    await error.filter(has_text="Nothing was deactivated").wait_for()
    assert await text(page, "#deactivate-ids-error") == (
        "Nothing was deactivated. This id is not in the local roster: “NOBODY-9”. "
        "Check for typing mistakes."
    )
    assert await page.evaluate("document.activeElement.id") == "deactivate-ids-error"
    assert await field.get_attribute("aria-invalid") == "true"
    assert await field.input_value() == "T000001,  NOBODY-9"  # kept, to be corrected
    assert await text(page, "#license-count") == "23 / 1,000"
    first_entry = page.locator("#audit-rows tr").first
    await first_entry.filter(has_text="Refused, nothing changed").wait_for()
    assert "Students deactivated" in await first_entry.inner_text()
    await tab.capture("panels-deactivate-by-id-refused")

    # Valid ids, one a line and with spaces: the count drops, the change is audited.
    await field.fill("T000001 T000002\nT000003")
    assert await error.inner_text() == ""
    await page.get_by_role("button", name="Deactivate these students…").click()
    assert await text(page, ".confirm-question:visible") == (
        "Deactivate 3 students: 20 active students (\N{MINUS SIGN}3)."
    )
    await tab.capture("panels-deactivate-by-id-confirm")
    await page.get_by_role("button", name="Deactivate", exact=True).click()
    result = page.locator("#count-review-result")
    await result.filter(has_text="deactivated").wait_for()
    assert "3 students deactivated. Your district now has 20 active students" in (
        await result.inner_text()
    )
    assert await page.evaluate("document.activeElement.id") == "count-review-result"
    assert await field.input_value() == ""
    await page.locator("#license-count").filter(has_text="20 / 1,000").wait_for()
    await first_entry.filter(has_text="Applied").wait_for()
    assert "Students deactivated" in await first_entry.inner_text()
    await (
        page.locator("#deactivated-body").filter(has_text="3 deactivated local students").wait_for()
    )
    await tab.capture("panels-deactivated-by-id")
