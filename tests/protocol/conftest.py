"""The browser fixtures of tests/pages (Chromium through Playwright, console errors fail a test),
for test_mirror.py, which runs static/js/protocol.js in a page."""

from tests.pages.conftest import browser, new_page, page, page_errors  # noqa: F401 (fixtures, used by name)
