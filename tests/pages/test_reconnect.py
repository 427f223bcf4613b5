"""The pages reconnect by themselves after a network drop and resume with `since`."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from playwright.async_api import Page, WebSocketRoute, expect

from tests.pages.helpers import LIFECYCLE, SAFETY_NET_SECONDS, fill_form, timeline_titles
from tests.support import ServerProcess


async def frames_painted(page: Page, count: int) -> None:
    """Wait (checking every animation frame: the task is short) until the canvas painted `count` frames."""
    await page.wait_for_function(
        "count => Number(document.querySelector('#preview').dataset.frames) >= count", arg=count, polling="raf"
    )


async def test_a_dropped_socket_resumes_with_since_and_loses_nothing(server: ServerProcess, page: Page) -> None:
    # every page socket goes through this proxy, which records what the page sends
    connections: list[dict[str, Any]] = []

    def proxy(ws: WebSocketRoute) -> None:
        upstream = ws.connect_to_server()
        record: dict[str, Any] = {"route": ws, "sent": []}

        def from_page(message: str | bytes) -> None:
            record["sent"].append(json.loads(message))
            upstream.send(message)

        ws.on_message(from_page)
        connections.append(record)

    await page.route_web_socket(re.compile(r"/v1/ws$"), proxy)
    await page.goto(server.base_url + "/")
    await fill_form(page, "a drop in the middle", size="256x256", steps=30)
    await page.get_by_role("button", name="Generate").click()
    await frames_painted(page, 3)
    task_id = page.url.split("/t/")[1].split("?")[0]

    await connections[0]["route"].close(code=4000, reason="network drop")  # the page's side of the socket dies
    async with asyncio.timeout(SAFETY_NET_SECONDS):
        while len(connections) < 2 or not connections[1]["sent"]:
            await asyncio.sleep(0.05)
    await expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    await expect(page.locator("#status")).to_have_attribute("data-status", "completed")

    first, resumed = connections[0]["sent"][0], connections[1]["sent"][0]
    assert first == {"type": "subscribe", "id": task_id, "since": 0, "previews": "binary", "token": first["token"]}
    assert resumed["type"] == "subscribe" and resumed["id"] == task_id and resumed["token"] == first["token"]
    assert resumed["since"] >= 8  # past task_start and a few steps: the page resumed where it was
    # nothing lost, nothing twice
    assert await timeline_titles(page) == LIFECYCLE
    await expect(page.locator("#stat-step")).to_have_text("30/30")
    await expect(page.locator("#gallery figure img")).to_have_js_property("naturalWidth", 256)


async def test_the_page_survives_a_server_restart(start_server, page: Page, page_errors) -> None:
    page_errors.allow(r"WebSocket connection to .* failed")  # Chromium reports the attempts while it is down
    page_errors.allow(r"ERR_CONNECTION_REFUSED")  # and any request the page makes meanwhile (the history's)
    first = start_server("--preview-min-interval", "0")
    await page.goto(first.base_url + "/")
    await fill_form(page, "a task that outlives its server", size="256x256", steps=30)
    await page.get_by_role("button", name="Generate").click()
    await frames_painted(page, 3)

    first.kill()  # no goodbye: the connection just dies
    await expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    await expect(page.locator("#connection")).to_have_text("Reconnecting…")
    start_server("--preview-min-interval", "0", port=first.port)  # same data dir and port

    await expect(page.locator("#status")).to_have_attribute("data-status", "completed")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    titles = await timeline_titles(page)
    # the first attempt, the interruption, the second attempt to the end; no event shown twice
    assert titles[:6] == LIFECYCLE[:6]
    assert titles[6:8] == ["Warning", "Queued again"]
    assert titles[8:] == LIFECYCLE[1:]
    await expect(page.locator("#timeline .tl-item").nth(6)).to_contain_text("the server stopped")
    await expect(page.locator("#timeline .tl-item").nth(8)).to_contain_text("attempt 2")
    await expect(page.locator("#gallery figure")).to_have_count(1)
