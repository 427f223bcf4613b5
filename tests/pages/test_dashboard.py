"""The dashboard (`/dashboard`): initial state from GET /v1/tasks, then live from `subscribe_all`."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, Request, WebSocketRoute, expect

from tests.pages.helpers import SAFETY_NET_SECONDS, cancel_task, create_task, screenshot
from tests.support import ServerProcess, wait_status


async def test_the_dashboard_shows_tasks_submitted_elsewhere_as_they_live(server: ServerProcess, page: Page) -> None:
    # finished before the page opened: it comes from the task list
    earlier = await create_task(server.base_url, prompt="finished before the dashboard opened")
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        await wait_status(http, earlier["id"], {"completed"})
    await page.goto(server.base_url + "/dashboard")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    earlier_card = page.locator(f'.recent-card[data-id="{earlier["id"]}"]')
    await expect(earlier_card).to_contain_text("finished before the dashboard opened")
    await expect(earlier_card).to_have_attribute("data-status", "completed")

    # submitted by someone else while the page is open: a long one, and one waiting behind it
    running = await create_task(server.base_url, prompt="running elsewhere", width=512, height=512, num_inference_steps=100)
    queued = await create_task(server.base_url, prompt="queued elsewhere", width=256, height=256, num_inference_steps=8)

    card = page.locator(f'.run-card[data-id="{running["id"]}"]')
    await expect(card).to_contain_text("running elsewhere")
    await expect(card).to_contain_text(re.compile(r"step \d+/100"))
    await expect(card.get_by_role("progressbar")).not_to_have_attribute("aria-valuenow", "0")
    await expect(card.locator("canvas")).to_have_attribute("data-frames", re.compile(r"^([3-9]|\d\d+)$"))  # live thumbnail
    row = page.locator(f'.queue-row[data-id="{queued["id"]}"]')
    await expect(row).to_contain_text("queued elsewhere")
    await expect(row).to_contain_text("256×256 · 8 steps")
    await expect(row.locator(".position")).to_have_text(re.compile(r"^#\d+$"))
    await expect(page.locator("#count-running")).to_have_text(re.compile(r"^[1-9]\d*$"))
    await expect(page.locator("#count-queued")).to_have_text(re.compile(r"^[1-9]\d*$"))
    await expect(page.locator("#speed")).to_have_text(re.compile(r"[\d.]+ (it/s|s/it)"))

    # cancelled from the dashboard; the queued task runs and lands in the recent results
    await card.get_by_role("button", name="Cancel").click()
    cancelled = page.locator(f'.recent-card[data-id="{running["id"]}"]')
    await expect(cancelled).to_have_attribute("data-status", "cancelled")
    await expect(cancelled).to_contain_text("cancelled by request")
    done = page.locator(f'.recent-card[data-id="{queued["id"]}"]')
    await expect(done).to_have_attribute("data-status", "completed")
    await expect(done).to_contain_text("queued elsewhere")
    await done.scroll_into_view_if_needed()
    await expect(done.locator("img")).to_have_js_property("naturalWidth", 256)
    await expect(row).to_have_count(0)
    await expect(card).to_have_count(0)
    await expect(page.locator("#running-empty")).to_be_visible()
    assert int(await page.locator("#count-completed").text_content()) >= 2
    assert float(await page.locator("#throughput").text_content()) > 0
    # recent results are newest first
    ids = await page.locator(".recent-card").evaluate_all("cards => cards.map(c => c.dataset.id)")
    assert ids.index(queued["id"]) < ids.index(running["id"]) < ids.index(earlier["id"])


async def lists_loaded(requests: list[Request]) -> None:
    """Wait for the dashboard's initial GET /v1/tasks requests (one per status list) to be answered."""
    async with asyncio.timeout(SAFETY_NET_SECONDS):
        while len(requests) < 6:
            await asyncio.sleep(0.05)
    for request in requests:
        assert (await request.response()).status == 200


async def test_the_dashboard_sends_an_optional_api_key(server: ServerProcess, page: Page) -> None:
    sent: list[dict[str, Any]] = []

    def proxy(ws: WebSocketRoute) -> None:
        upstream = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            sent.append(json.loads(message))
            upstream.send(message)

        ws.on_message(from_page)

    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request) if "/v1/tasks" in request.url else None)
    await page.route_web_socket(re.compile(r"/v1/ws$"), proxy)

    # without a key (an open server) it works and sends none
    await page.goto(server.base_url + "/dashboard")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    await lists_loaded(requests)
    assert sent[0] == {"type": "subscribe_all", "previews": "binary"}
    assert all("authorization" not in headers for headers in [await r.all_headers() for r in requests])

    # with a key: `Authorization: Bearer` on requests, `api_key` in socket messages
    requests.clear()
    await page.get_by_label("API key").fill("lc_example_key")
    await page.get_by_role("button", name="Connect").click()
    await lists_loaded(requests)
    assert {"type": "subscribe_all", "previews": "binary", "api_key": "lc_example_key"} in sent
    headers = [await r.all_headers() for r in requests]
    assert all(h.get("authorization") == "Bearer lc_example_key" for h in headers), headers
    await expect(page.locator("#connection")).to_have_attribute("data-state", "open")

    # kept for the tab's session only
    await page.reload()
    await expect(page.get_by_label("API key")).to_have_value("lc_example_key")


async def test_the_workers_panel_shows_each_worker_live(server: ServerProcess, page: Page, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        (worker,) = (await http.get("/v1/workers")).json()["data"]
    await page.goto(server.base_url + "/dashboard")
    table = page.get_by_role("table", name="Workers")
    row = table.locator(f'tbody tr[data-name="{worker["name"]}"]')
    await expect(row.locator("th, td")).to_have_text(
        [worker["name"], "cpu", "builtin:tiny", "—", re.compile(r"^(just now|\d+ s ago)$"), "idle"]
    )
    await expect(page.locator("#workers-count")).to_have_text("1 live")

    # a task taken: the row names it (a link to its page) and the worker is working, then idle again
    running = await create_task(server.base_url, prompt="on the worker", width=512, height=512, num_inference_steps=100)
    task_link = row.locator("td.worker-task a")
    await expect(task_link).to_have_text("on the worker")
    await expect(task_link).to_have_attribute("href", f"/t/{running['id']}?token={running['token']}")
    await expect(row).to_have_attribute("data-state", "working")
    await screenshot(page, "dashboard-workers", tmp_path, full_page=False, docs=False)
    await cancel_task(server.base_url, running["id"])
    await expect(row).to_have_attribute("data-state", "idle")
    await expect(row.locator("td.worker-task")).to_have_text("—")
