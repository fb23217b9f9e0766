"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, against the real app
served on 127.0.0.1 (HTTP and websockets). Any request to another host fails the test (the page
needs no network).

One Chromium per pytest process (per xdist worker), launched once for the session; each test gets
fresh browser contexts (no shared cookies or storage). The browser is Debian's headless shell
(`apt-get install chromium-headless-shell`), or its full Chromium when only that is installed:
the same Blink and V8, without the desktop browser around them, and the browser tests take about
40% less processor time with it. Without either the tests skip, unless
LICENSING_REQUIRE_BROWSER=1, when they fail.

``Tab.capture(state)`` checks one state of the page at a desktop and a phone size: axe-core finds
no serious or critical accessibility violation (at the desktop size: its rules do not depend on
the width, and each run costs half a second), no page text reads like an internal (a code such
as LICENSE_NOT_AVAILABLE, a server path, SQL, a Python exception or GraphQL's own error text) and
nothing overflows sideways, at both sizes. With LICENSING_SCREENSHOTS=1 (`make screenshots`) each
state is also written to tests/browser/artifacts/STATE-SIZE.png, to look at.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.factory import create_app
from licensing.orchestration.service import LicensingService
from tests.fakes.serve import serve

# The first of these that is installed.
CHROMIUM_CANDIDATES = (Path("/usr/bin/chromium-headless-shell"), Path("/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# Read at import: the isolated_environment fixture removes LICENSING_* variables from each test.
REQUIRE_BROWSER = os.environ.get("LICENSING_REQUIRE_BROWSER") == "1"
# Screenshots are for people to look at; writing them costs a quarter of a second each.
SCREENSHOTS = os.environ.get("LICENSING_SCREENSHOTS") == "1"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    # Every host but 127.0.0.1 fails to resolve, in the browser itself: no request can leave the
    # machine, and none waits on a round trip to the test as a route handler would make it.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
HOW_TO_INSTALL = (
    "Debian's Chromium is needed for the browser tests: install it with "
    "`sudo apt-get update && sudo apt-get install -y chromium-headless-shell` "
    "(it must be /usr/bin/chromium-headless-shell or /usr/bin/chromium), "
    "and Playwright for Python with `.venv/bin/pip install -e '.[test]'`."
)
TIMEOUT_MS = 10_000
DESKTOP = (1280, 900)
PHONE = (390, 844)
SERIOUS = {"serious", "critical"}
# axe-core's run with axe_playwright_python's default options, but only the violations come back:
# the whole result, a list of every rule, is 50 KB, and sending it took a third of a run.
AXE_RUN = "axe.run({resultTypes: ['violations']}).then((results) => results.violations)"

# Reports every Content-Security-Policy violation of every document the page loads to the test
# (an init script is not itself subject to the page's policy).
CSP_LISTENER = """
document.addEventListener('securitypolicyviolation', (event) => {
  window.reportCspViolation(
    `${event.effectiveDirective} blocked ${event.blockedURI || 'inline'} ` +
    `at ${event.sourceFile || document.location.href}:${event.lineNumber}`
  );
});
"""

# What no text on the page may look like: internals that reached the user.
INTERNAL_TEXT = {
    "an internal code": re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b"),
    "a file path": re.compile(r"(?:^|[\s(\"'])(?:/[\w.-]+){2,}|\b[A-Za-z]:\\|\.py\b"),
    "SQL": re.compile(
        r"\bSELECT\b.+\bFROM\b|\bINSERT INTO\b|\bUPDATE \w+ SET\b|\bDELETE FROM\b"
        r"|\b(?:psycopg|sqlite3?|sqlalchemy)\b"
    ),
    "a Python exception": re.compile(r"\b\w*(?:Error|Exception)\b|Traceback"),
    "GraphQL's own error text": re.compile(
        r"Variable '\$|cannot represent|Syntax Error|Expected Name|Cannot query field"
    ),
}


def internal_text_found(text: str) -> list[str]:
    """What in ``text`` reads like an internal, described; empty when nothing does."""
    return [
        f"{what}: {match.group(0).strip()!r}"
        for what, pattern in INTERNAL_TEXT.items()
        for match in pattern.finditer(text)
    ]


def installed_chromium() -> Path | None:
    return next((path for path in CHROMIUM_CANDIDATES if path.exists()), None)


def _browser_missing() -> str | None:
    if installed_chromium() is None:
        return f"Chromium is missing. {HOW_TO_INSTALL}"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return f"The playwright package is missing. {HOW_TO_INSTALL}"
    return None


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    # Session-scoped here, so that the session's one browser and every test share one event loop.
    return "asyncio"


@pytest.fixture(scope="session")
async def browser(anyio_backend: str) -> AsyncIterator[Any]:
    problem = _browser_missing()
    if problem is not None:
        if REQUIRE_BROWSER:
            pytest.fail(f"LICENSING_REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(installed_chromium()), headless=True, args=LAUNCH_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def served(service: LicensingService) -> Iterator[str]:
    with serve(create_app(service), websockets=True) as url:
        yield url


class Tab:
    """One browser page on the served app, with the requests that left 127.0.0.1 and the
    Content-Security-Policy violations it reported."""

    def __init__(
        self, page: Any, base_url: str, external: list[str], violations: list[str]
    ) -> None:
        self.page = page
        self.base_url = base_url
        self.external = external
        self.violations = violations

    async def screenshot(self, name: str) -> None:
        """Write the whole page to tests/browser/artifacts/NAME.png (with LICENSING_SCREENSHOTS=1)."""
        await save_screenshot(self.page, name, full_page=True)

    async def sign_in(self, token: str) -> None:
        page = self.page
        await page.goto(self.base_url + "/")
        await page.get_by_label("API token").fill(token)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_function("() => (document.body.dataset.refreshes || 0) > 0")

    async def refresh(self) -> None:
        """Click Refresh now and wait for the new figures."""
        count = await self.refreshes()
        await self.page.get_by_role("button", name="Refresh now").click()
        await self.page.wait_for_function(
            "n => Number(document.body.dataset.refreshes || 0) > n", arg=count
        )

    async def refreshes(self) -> int:
        return int(await self.page.evaluate("Number(document.body.dataset.refreshes || 0)"))

    async def live(self) -> None:
        """Wait until the page follows the figures over its websocket."""
        await self.page.wait_for_function("() => document.body.dataset.live === 'live'")

    async def capture(self, state: str) -> None:
        """Check this state at the desktop and the phone size (see the module's docstring) and
        write STATE-1280x900.png and STATE-390x844.png."""
        page = self.page
        size = page.viewport_size
        for width, height in (DESKTOP, PHONE):
            await page.set_viewport_size({"width": width, "height": height})
            await self.check_accessible(f"{state} at {width}x{height}", axe=width == DESKTOP[0])
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{state} at {width}px overflows sideways by {overflow}px"
            await self.screenshot(f"{state}-{width}x{height}")
        await page.set_viewport_size(size)

    async def check_accessible(self, where: str, *, axe: bool = True) -> None:
        """No internal text on the page, and (with ``axe``) no serious axe-core violation."""
        if axe:
            from axe_playwright_python.async_playwright import Axe

            axe_runner = Axe()
            # axe-core is put into each document once: Axe.run() would send and parse its
            # half a megabyte of script again at every state checked.
            if not await self.page.evaluate("typeof window.axe === 'object'"):
                await self.page.evaluate(axe_runner.axe_script)
            violations = await self.page.evaluate(AXE_RUN)
            serious = [
                f"{violation['id']} ({violation['impact']}): "
                + ", ".join(str(node["target"]) for node in violation["nodes"])
                for violation in violations
                if violation["impact"] in SERIOUS
            ]
            assert serious == [], f"axe-core found serious problems in {where}: {serious}"
        shown = await self.page.evaluate(
            """() => [document.body.innerText, document.title,
                ...[...document.querySelectorAll('[aria-label], [aria-valuetext], [title], [placeholder]')]
                  .flatMap((el) => ['aria-label', 'aria-valuetext', 'title', 'placeholder']
                    .map((name) => el.getAttribute(name) || ''))].join('\\n')"""
        )
        found = internal_text_found(shown)
        assert found == [], f"the page shows internals in {where}: {found}"


async def save_screenshot(target: Any, name: str, **options: Any) -> None:
    """Write a page's or an element's screenshot to tests/browser/artifacts/NAME.png, when
    LICENSING_SCREENSHOTS=1."""
    if SCREENSHOTS:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await target.screenshot(path=str(ARTIFACTS / f"{name}.png"), **options)


OpenTab = Callable[..., Awaitable[Tab]]


@pytest.fixture
async def open_tab(browser: Any, served: str) -> AsyncIterator[OpenTab]:
    """open_tab(width=1280, height=900) -> Tab in a new browser context; fails the test if the
    page asked any host but 127.0.0.1, or if any state of the page broke its
    Content-Security-Policy (an event, or the console's report of one)."""
    contexts: list[Any] = []
    external: list[str] = []
    violations: list[str] = []

    def note_external(request: Any) -> None:
        if urlsplit(request.url).hostname != "127.0.0.1":
            external.append(request.url)

    async def make(width: int = DESKTOP[0], height: int = DESKTOP[1]) -> Tab:
        context = await browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(TIMEOUT_MS)
        context.on("request", note_external)
        await context.expose_function("reportCspViolation", lambda text: violations.append(text))
        await context.add_init_script(CSP_LISTENER)
        contexts.append(context)
        page = await context.new_page()
        page.on("console", lambda message: _note_csp_console(message, violations))
        return Tab(page, served, external, violations)

    yield make
    for context in contexts:
        # The page may still be polling: a test's route handler in flight when the context
        # closes must not raise into the next test on this worker's browser.
        for page in context.pages:
            await page.unroute_all(behavior="ignoreErrors")
        await context.close()
    assert external == [], f"the page requested hosts other than 127.0.0.1: {external}"
    assert violations == [], f"the page broke its Content-Security-Policy: {violations}"


def _note_csp_console(message: Any, violations: list[str]) -> None:
    if "content security policy" in message.text.lower():
        violations.append(f"console: {message.text}")


async def text(page: Any, selector: str) -> str:
    return " ".join((await page.locator(selector).inner_text()).split())
