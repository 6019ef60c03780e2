"""A real headless Chromium (the system's, Debian package ``chromium``) driven by Playwright."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

CHROMIUM = os.environ.get("CROWD_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One Chromium for the browser tests in a row. Package-scoped, not session-scoped: sync
    Playwright keeps an asyncio loop running on the main thread while it is open, and tests
    elsewhere (the stress test) run loops of their own; under xdist they may come after these."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium "
            "chromium-driver` (or set CROWD_TEST_CHROMIUM to its path)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser: Browser, live_url: str) -> Iterator[Page]:
    """A fresh tab (its own sessionStorage) that fails the test on any script error."""
    context = browser.new_context(base_url=live_url, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))

    def console(message: ConsoleMessage) -> None:
        # The browser logs every 4xx the pages handle (e.g. 403 banned); those are expected.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    tab.on("console", console)
    yield tab
    context.close()
    assert not errors, errors
