"""The Licensing tab and tokens that expire, in a real browser: an expired token is refused with
words that say so, and a signed-in tab goes back to the sign-in form once its token expires."""

from __future__ import annotations

from datetime import timedelta

import pytest

from licensing.storage.tokens import Permission
from tests.browser.conftest import text
from tests.utils.districts import token_for

pytestmark = pytest.mark.anyio


async def test_signing_in_with_an_expired_token_says_it_has_expired(
    make_district, service, open_tab, clock
):
    district = await make_district(seats=1000, active=960)
    expires_at = clock() + timedelta(days=1)
    token = token_for(service, district.id, Permission.MANAGE_SETTINGS, expires_at=expires_at)
    clock.set(expires_at)
    tab = await open_tab()
    page = tab.page
    await page.goto(tab.base_url + "/")

    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()

    await page.get_by_text("That API token has expired.").wait_for()
    assert "new token" in await text(page, "#sign-in-error")
    assert not await page.locator("#tab").is_visible()


async def test_the_tab_signs_out_when_its_token_expires(make_district, service, open_tab, clock):
    district = await make_district(seats=1000, active=960)
    expires_at = clock() + timedelta(minutes=5)
    token = token_for(service, district.id, Permission.MANAGE_SETTINGS, expires_at=expires_at)
    tab = await open_tab()
    await tab.sign_in(token)
    page = tab.page
    assert await text(page, "#license-count") == "960 / 1,000"

    await tab.live()

    clock.set(expires_at)

    # The page's next read, or its live updates ending with the token, finds the session over.
    await page.get_by_label("API token").wait_for()
    assert "session has ended" in await text(page, "#sign-in-error")
    assert not await page.locator("#tab").is_visible()
