"""Browser fixtures: Debian's Chromium driven by Playwright against the real server.

Every `page` records console errors and uncaught exceptions and fails its test on any it was not
told to expect (`page_errors.allow(pattern)`), so each test is also a "no console errors" test.

The pages are clients of the public API like any other, and the core tests already hold every
backend to the same protocol, so the browser tests run against one backend: the default
single-process server (`LATENTCAST_PAGES_BACKENDS=sqlite,redis` runs them against each).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.pages.helpers import SAFETY_NET_SECONDS, WIDE, ConsoleWatch

CHROMIUM = os.environ.get("LATENTCAST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Waits follow real tasks on a shared CPU: generous, so a busy machine slows the tests down
# instead of failing them (a passing wait returns as soon as its condition holds).
expect.set_options(timeout=SAFETY_NET_SECONDS * 1000)


PAGES = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep this folder's tests on the backends asked for (the `server` fixture offers them all)."""
    backends = {b.strip() for b in os.environ.get("LATENTCAST_PAGES_BACKENDS", "sqlite").split(",")}
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("server") if callspec is not None else None
        in_pages = PAGES in Path(str(item.path)).resolve().parents
        (dropped if in_pages and backend is not None and backend not in backends else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (or set LATENTCAST_CHROMIUM)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
def page_errors() -> ConsoleWatch:
    return ConsoleWatch()


@pytest_asyncio.fixture
async def new_page(browser: Browser, page_errors: ConsoleWatch) -> AsyncIterator:
    """A factory of fresh pages (each in its own context: no shared storage), all watched."""
    contexts: list[BrowserContext] = []

    async def make(viewport: dict[str, int] | None = None, **options) -> Page:
        context = await browser.new_context(viewport=viewport or WIDE, **options)
        context.set_default_timeout(SAFETY_NET_SECONDS * 1000)
        contexts.append(context)
        return page_errors.watch(await context.new_page())

    yield make
    for context in contexts:
        await context.close()
    unexpected = page_errors.unexpected()
    assert not unexpected, "errors in the browser console:\n" + "\n".join(unexpected)


@pytest_asyncio.fixture
async def page(new_page) -> Page:
    return await new_page()
