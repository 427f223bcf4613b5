"""Webhook deliveries in the pages: the task page lists its task's, the dashboard the newest of
every task, each with its state and how its attempts went."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from playwright.async_api import expect

from tests.pages.helpers import create_task
from tests.receiver import Receiver
from tests.support import ServerProcess
from tests.webhooks.helpers import all_ended

SMALL = {"width": 64, "height": 64, "num_inference_steps": 2}


@pytest.mark.parametrize("hooks_server", ["sqlite"], indirect=True)
async def test_the_task_page_and_the_dashboard_show_deliveries(
    hooks_server: ServerProcess, new_page: Callable, receiver: Callable[..., Receiver]
) -> None:
    base = hooks_server.base_url
    retried, gone = receiver([503]), receiver([410])
    task = await create_task(base, prompt="delivered on the second attempt", **SMALL, webhook=retried.url,
                             webhook_events=["task_start", "task_postprocess_end"])
    refused = await create_task(base, prompt="its receiver is gone", **SMALL, webhook=gone.url)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await all_ended(http, task, 2)
        [given_up] = await all_ended(http, refused, 1)

    page = await new_page()
    await page.goto(task["urls"]["page"])
    items = page.locator("#deliveries .delivery")
    await expect(items).to_have_count(2)
    await expect(items.nth(0)).to_have_attribute("data-state", "delivered")
    await expect(items.nth(0)).to_contain_text("task_start")
    await expect(items.nth(0)).to_contain_text("attempt 2 · HTTP 200")
    await expect(items.nth(1)).to_contain_text("task_postprocess_end")
    await expect(items.nth(1)).to_contain_text("Delivered")
    await expect(page.locator("#deliveries-block")).to_be_visible()

    dashboard = await new_page()
    await dashboard.goto(base + "/dashboard")
    row = dashboard.locator(f'#webhooks .delivery[data-id="{given_up["id"]}"]')
    await expect(row).to_have_attribute("data-state", "failed")
    await expect(row).to_contain_text("Given up")
    await expect(row).to_contain_text("attempt 1 · HTTP 410 · 410 Gone: the receiver wants no more deliveries")
    await expect(row.get_by_role("link")).to_have_attribute("href", f"/t/{refused['id']}")
    title = f"its receiver is gone · task_postprocess_end · seq {given_up['seq']}"
    await expect(row.get_by_role("link")).to_have_text(title)
    await expect(dashboard.locator("#webhooks .delivery", has_text="task_start")).not_to_have_count(0)
