"""The checks every state of the tab goes through (Tab.capture in conftest.py) find what they
look for: a check that could not fail would pass every state."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


async def test_the_accessibility_check_finds_a_serious_violation(open_tab):
    tab = await open_tab()
    await tab.page.goto(tab.base_url + "/")
    await tab.check_accessible("the sign-in page")

    # A button with no name is a critical violation (axe-core's rule button-name).
    await tab.page.evaluate("document.body.append(document.createElement('button'))")
    with pytest.raises(AssertionError, match=r"button-name \(critical\)"):
        await tab.check_accessible("the sign-in page with a nameless button")


async def test_the_text_check_finds_an_internal_code(open_tab):
    tab = await open_tab()
    await tab.page.goto(tab.base_url + "/")
    await tab.page.evaluate("document.body.append('LICENSE_NOT_AVAILABLE')")
    with pytest.raises(AssertionError, match="an internal code: 'LICENSE_NOT_AVAILABLE'"):
        await tab.check_accessible("the sign-in page with a code", axe=False)
