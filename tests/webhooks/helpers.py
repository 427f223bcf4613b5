"""Helpers of the webhook tests: a task with a webhook, and its deliveries as the API lists them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.support import SMALL, eventually


async def submit(client: httpx.AsyncClient, url: str, prompt: str, **fields: Any) -> dict[str, Any]:
    """A small task whose webhook is `url` (`fields` add to or change the body)."""
    answer = await client.post("/v1/tasks", json={"prompt": prompt, **SMALL, "webhook": url, **fields})
    assert answer.status_code == 201, answer.text
    return answer.json()


async def deliveries(client: httpx.AsyncClient, task: dict[str, Any]) -> list[dict[str, Any]]:
    answer = await client.get(f"/v1/tasks/{task['id']}/deliveries", params={"token": task["token"]})
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


async def deliveries_when(
    client: httpx.AsyncClient, task: dict[str, Any], holds: Callable[[list[dict[str, Any]]], bool], what: str
) -> list[dict[str, Any]]:
    """The task's deliveries, once `holds(deliveries)`."""
    found: list[dict[str, Any]] = []

    async def check() -> bool:
        found[:] = await deliveries(client, task)
        return bool(found) and holds(found)

    await eventually(check, f"task {task['id']}: {what}")
    return found


async def all_ended(client: httpx.AsyncClient, task: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The task's `count` deliveries, once none is pending (delivered or given up)."""
    return await deliveries_when(
        client, task, lambda found: len(found) == count and all(d["state"] != "pending" for d in found),
        f"{count} deliveries ended",
    )
