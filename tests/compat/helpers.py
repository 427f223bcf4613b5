"""Helpers of the compatibility tests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import websockets
from PIL import Image

from tests.support import eventually, is_terminal


def image_of(data: bytes | str) -> Image.Image:
    """Image bytes (or their base64) as a loaded PIL image."""
    raw = base64.b64decode(data) if isinstance(data, str) else data
    image = Image.open(io.BytesIO(raw))
    image.load()
    return image


async def task_with_prompt(client: httpx.AsyncClient, prompt: str, timeout: float = 30) -> dict[str, Any]:
    """The newest native task whose prompt is `prompt` (compat tasks are listed like any other),
    waiting for it to appear."""

    async def newest() -> dict[str, Any] | None:
        page = (await client.get("/v1/tasks", params={"limit": 200})).json()
        return next((task for task in page["data"] if task["params"]["prompt"] == prompt), None)

    return await eventually(newest, f"a task with prompt {prompt!r}", timeout)


async def count_tasks(client: httpx.AsyncClient) -> int:
    return len((await client.get("/v1/tasks", params={"limit": 200})).json()["data"])


async def newest_task(client: httpx.AsyncClient) -> str | None:
    tasks = (await client.get("/v1/tasks", params={"limit": 1})).json()["data"]
    return tasks[0]["id"] if tasks else None


@contextlib.asynccontextmanager
async def nothing_queued(client: httpx.AsyncClient) -> AsyncIterator[None]:
    """The block must create no task (a refused request queues nothing)."""
    before = await newest_task(client)
    yield
    assert await newest_task(client) == before


def changed(body: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """`body` with `change` applied; a field changed to None is left out."""
    return {key: value for key, value in (body | change).items() if value is not None}


async def wiro_socket(ws_url: str, tasktoken: str, timeout: float = 180) -> list[dict[str, Any]]:
    """What Wiro's page JavaScript receives after `{"type": "task_info", "tasktoken"}`, up to the
    task's terminal event (control messages included, in order)."""
    received: list[dict[str, Any]] = []
    async with websockets.connect(ws_url, max_size=None) as ws:
        await ws.send('{"type": "task_info", "tasktoken": "' + tasktoken + '"}')  # as the page builds it
        async with asyncio.timeout(timeout):
            while True:
                frame = await ws.recv()
                assert isinstance(frame, str), "a Wiro subscription gets JSON text frames only"
                message = orjson.loads(frame)
                received.append(message)
                if "seq" in message and is_terminal(message):
                    return received


async def native_task(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    answer = await client.post("/v1/tasks", json={"prompt": "native", **params})
    assert answer.status_code == 201, answer.text
    return answer.json()
