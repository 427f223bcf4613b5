"""The pages on a server with API keys: the live page asks for a key and submits with it, its share
link works with the token alone, and the dashboard connects with a key and shows the task's image."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import expect

from tests.pages.helpers import fill_form
from tests.security.helpers import create_key


async def test_the_pages_work_on_a_server_with_keys(start_server, tmp_path: Path, new_page, page_errors) -> None:
    alice = create_key(tmp_path / "data", "alice")
    server = start_server("--preview-min-interval", "0")
    page_errors.allow(r"status of 401")  # what is refused before a key is entered

    page = await new_page()
    await page.goto(server.base_url + "/")
    await fill_form(page, "a fox behind a locked door", size="256x256", steps=4)
    await page.get_by_role("button", name="Generate").click()
    asked = "This server needs a valid API key: enter it under Advanced."
    await expect(page.locator("#form-error")).to_have_text(asked)
    key_field = page.get_by_label("API key")
    await expect(key_field).to_be_focused()
    await key_field.fill(alice["key"])
    await page.get_by_role("button", name="Generate").click()
    await expect(page).to_have_url(re.compile(r"/t/[0-9a-f]+\?token=[\w-]+$"))
    task_id = page.url.split("/t/")[1].split("?")[0]
    await expect(page.locator("#status")).to_have_attribute("data-status", "completed")
    await expect(page.locator("#gallery figure img")).to_have_js_property("naturalWidth", 256)

    # the share link, in a browser that has no key
    watcher = await new_page()
    await watcher.goto(page.url)
    await expect(watcher.locator("#status")).to_have_attribute("data-status", "completed")
    await expect(watcher.locator("#gallery figure img")).to_have_js_property("naturalWidth", 256)

    # the dashboard asks for a key (and does not claim to be live), then shows the key's task with its image
    board = await new_page()
    await board.goto(server.base_url + "/dashboard")
    await expect(board.locator("#board-error")).to_have_text("This server needs an API key: enter one above.")
    await expect(board.locator("#connection")).to_have_text("No access")
    await expect(board.locator("#connection")).to_have_attribute("data-state", "refused")
    await board.get_by_label("API key").fill("lc_not-a-key")
    await board.get_by_role("button", name="Connect").click()
    await expect(board.locator("#board-error")).to_have_text(
        "This API key was refused: the API key is not valid (unknown or revoked)"
    )
    await expect(board.locator("#connection")).to_have_text("No access")
    await board.get_by_label("API key").fill(alice["key"])
    await board.get_by_role("button", name="Connect").click()
    card = board.locator(f'.recent-card[data-id="{task_id}"]')
    await expect(card).to_have_attribute("data-status", "completed")
    await expect(card.locator("img")).to_have_js_property("naturalWidth", 256)
    await expect(board.locator("#board-error")).to_be_hidden()
    await expect(board.locator("#connection")).to_have_text("Live")
