"""The live page's history (GET /v1/tasks, newest first, a page at a time; `?history=N` sets the
page size): thumbnails, paging, opening a task, a new task at the top when it ends, deleting, and
on a server with keys only the key's own tasks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, expect

from tests.pages.helpers import SAFETY_NET_SECONDS, create_task, set_range
from tests.security.helpers import bearer, create_key
from tests.support import ServerProcess, wait_status

TINY = {"width": 64, "height": 64, "num_inference_steps": 2}


async def listed_ids(page: Page) -> list[str]:
    return await page.locator("#history .history-item").evaluate_all("items => items.map((item) => item.dataset.id)")


def entry(page: Page, task_id: str):
    return page.locator(f'#history .history-item[data-id="{task_id}"]')


async def expect_thumbnail(page: Page, task_id: str, width: int) -> None:
    """The entry's image loaded (it loads lazily: once scrolled to, as a user would)."""
    image = entry(page, task_id).locator("img")
    await image.scroll_into_view_if_needed()
    await expect(image).to_have_js_property("naturalWidth", width)


async def test_the_newest_tasks_come_a_page_at_a_time_and_open_on_the_page(
    server: ServerProcess, client: httpx.AsyncClient, page: Page
) -> None:
    made = [await create_task(server.base_url, prompt=f"history {n}: a small red square", seed=100 + n, **TINY) for n in range(4)]
    for task in made:
        await wait_status(client, task["id"], {"completed"}, timeout=SAFETY_NET_SECONDS)

    await page.goto(server.base_url + "/?history=3")
    await expect(page.locator("#history .history-item")).to_have_count(3)
    # the server's newest three are this test's last three (the server is shared, but nothing else runs meanwhile)
    assert await listed_ids(page) == [made[3]["id"], made[2]["id"], made[1]["id"]]
    newest = entry(page, made[3]["id"])
    await expect(newest.locator(".badge")).to_have_text("Done")
    await expect(newest.locator(".row-prompt")).to_have_text("history 3: a small red square")
    await expect(newest.locator(".row-meta")).to_have_text(re.compile(r"^64×64 · seed 103 · (just now|.+ ago)$"))
    for task in made[1:]:
        await expect_thumbnail(page, task["id"], 64)

    more = page.get_by_role("button", name="Load more")
    await more.click()
    async with httpx.AsyncClient(base_url=server.base_url) as http:  # what two pages of three hold
        both = (await http.get("/v1/tasks", params={"limit": 6})).json()
    await expect(page.locator("#history .history-item")).to_have_count(len(both["data"]))
    assert await listed_ids(page) == [task["id"] for task in both["data"]]
    assert (await listed_ids(page))[3] == made[0]["id"]
    await expect_thumbnail(page, made[0]["id"], 64)
    if both["next_cursor"]:
        await expect(more).to_be_visible()
    else:
        await expect(more).to_be_hidden()

    # an entry opens its task on the page, with its token, without leaving it
    await page.evaluate("() => (window.__samePage = true)")
    await entry(page, made[1]["id"]).get_by_role("link").click()
    await expect(page).to_have_url(f"{server.base_url}/t/{made[1]['id']}?token={made[1]['token']}")
    await expect(page.locator("#status")).to_have_attribute("data-status", "completed")
    await expect(page.locator("#task-prompt")).to_have_text("history 1: a small red square")
    await expect(page.locator("#gallery figure img")).to_have_js_property("naturalWidth", 64)
    assert await page.evaluate("() => window.__samePage") is True


async def test_a_task_from_the_form_tops_the_history_when_it_ends_and_can_be_deleted(
    server: ServerProcess, client: httpx.AsyncClient, page: Page
) -> None:
    older = await create_task(server.base_url, prompt="an older task", **TINY)
    await wait_status(client, older["id"], {"completed"}, timeout=SAFETY_NET_SECONDS)
    await page.goto(server.base_url + "/?history=3")
    await expect(entry(page, older["id"])).to_be_visible()
    await page.evaluate("() => (window.__samePage = true)")

    await page.get_by_label("Prompt", exact=True).fill("a blue circle, from the form")
    await page.get_by_label("Width").fill("64")
    await page.get_by_label("Height").fill("64")
    await set_range(page, "#num_inference_steps", "3")
    await page.get_by_role("button", name="Generate").click()
    await expect(page).to_have_url(re.compile(r"/t/[0-9a-f]+\?token=[\w-]+$"))
    task_id = page.url.split("/t/")[1].split("?")[0]
    await expect(page.locator("#status")).to_have_attribute("data-status", "completed")

    new = entry(page, task_id)
    await expect(new).to_have_attribute("data-status", "completed")
    assert (await listed_ids(page))[:2] == [task_id, older["id"]]
    await expect(new.locator(".row-prompt")).to_have_text("a blue circle, from the form")
    await expect_thumbnail(page, task_id, 64)
    assert await page.evaluate("() => window.__samePage") is True  # no reload

    # deleting asks first; "Keep" keeps it
    await new.get_by_role("button", name="Delete", exact=True).click()
    question = new.get_by_role("group", name="Delete this task and its images?")
    await expect(question).to_be_visible()
    await expect(question.get_by_role("button", name="Keep")).to_be_focused()
    await question.get_by_role("button", name="Keep").click()
    await expect(question).to_be_hidden()
    await expect(new.get_by_role("button", name="Delete", exact=True)).to_be_focused()

    # the task on the stage is deleted: gone from the list and the server, the stage back to a new image
    await new.get_by_role("button", name="Delete", exact=True).click()
    await new.get_by_role("button", name="Yes, delete").click()
    await expect(new).to_have_count(0)
    assert (await client.get(f"/v1/tasks/{task_id}")).status_code == 404
    await expect(entry(page, older["id"])).to_be_visible()
    await expect(page).to_have_url(f"{server.base_url}/")
    await expect(page.locator("#status")).to_have_text("Ready")


async def create_tiny(base_url: str, key: dict[str, Any], prompt: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(key), timeout=30) as http:
        response = await http.post("/v1/tasks", json={"prompt": prompt, **TINY})
        assert response.status_code == 201, response.text
        task = response.json()
        await wait_status(http, task["id"], {"completed"}, timeout=SAFETY_NET_SECONDS)
    return task


async def test_on_a_server_with_keys_the_history_is_the_keys_own(
    start_server, tmp_path: Path, page: Page, page_errors
) -> None:
    alice = create_key(tmp_path / "data", "alice")
    bob = create_key(tmp_path / "data", "bob")
    server = start_server()
    first = await create_tiny(server.base_url, alice, "alice's first")
    await create_tiny(server.base_url, bob, "bob's")
    second = await create_tiny(server.base_url, alice, "alice's second")
    page_errors.allow(r"status of 401")  # the list, asked for before a key is given

    await page.goto(server.base_url + "/?history=1")
    await expect(page.locator("#history-empty")).to_have_text(
        "This server needs an API key to list your tasks: enter it under Advanced."
    )
    await page.get_by_text("Advanced", exact=True).click()
    await page.get_by_label("API key").fill(alice["key"])
    await page.get_by_label("API key").press("Tab")

    # a page of one, then the last page: no more to load; bob's task is not alice's to see
    await expect(page.locator("#history .history-item")).to_have_count(1)
    assert await listed_ids(page) == [second["id"]]
    more = page.get_by_role("button", name="Load more")
    await more.click()
    await expect(page.locator("#history .history-item")).to_have_count(2)
    assert await listed_ids(page) == [second["id"], first["id"]]
    await expect(more).to_be_hidden()
    for task in (second, first):  # an <img> sends no key: the file URLs carry the task's token
        await expect_thumbnail(page, task["id"], 64)

    await entry(page, second["id"]).get_by_role("button", name="Delete", exact=True).click()
    await entry(page, second["id"]).get_by_role("button", name="Yes, delete").click()
    await expect(entry(page, second["id"])).to_have_count(0)
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        assert (await http.get(f"/v1/tasks/{second['id']}", headers=bearer(alice))).status_code == 404

    # a deletion that fails says why, in the page's error style, and the entry stays
    server.kill()
    page_errors.allow(r"ERR_CONNECTION_REFUSED")
    await entry(page, first["id"]).get_by_role("button", name="Delete", exact=True).click()
    await entry(page, first["id"]).get_by_role("button", name="Yes, delete").click()
    await expect(page.locator("#history-error")).to_have_text(
        re.compile(r"^Could not delete “alice's first”: cannot reach the server")
    )
    await expect(entry(page, first["id"]).get_by_role("button", name="Delete", exact=True)).to_be_visible()
