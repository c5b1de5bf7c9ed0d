"""Fixtures of the browser tests (``pytest_plugins = ["chat_fixtures", "browser_fixtures"]``).

``browser`` is one headless Chromium per module; ``open_page`` opens a page in a fresh context
(its own cookies and storage, like another person's browser) and fails the test on any uncaught
script error in it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from browser_support import CHROMIUM, CHROMIUM_FLAGS, DESKTOP, UI_TIMEOUT_MS, CuttableProxy
from chat_support import ChatServer

OpenPage = Callable[..., Awaitable[Page]]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (make test does it as root; "
            "or apt-get install chromium), or point CHROMIUM_PATH at a Chromium"
        )
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[OpenPage]:
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    async def open_(url: str, *, viewport: dict | None = None, **context_options) -> Page:
        """``context_options`` go to the new context (e.g. ``locale``, ``timezone_id``)."""
        context = await browser.new_context(viewport=viewport or DESKTOP, **context_options)
        context.set_default_timeout(UI_TIMEOUT_MS)
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"{url}: {exc}"))
        await page.goto(url)
        return page

    yield open_
    for context in contexts:
        await context.close()
    assert not errors, f"uncaught script errors: {errors}"


@pytest.fixture
async def proxy(chat_server: ChatServer) -> AsyncIterator[CuttableProxy]:
    host, port = chat_server.url.removeprefix("http://").split(":")
    cuttable = await CuttableProxy(host, int(port)).start()
    yield cuttable
    await cuttable.stop()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("SCREENSHOT_DIR")
    return Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
