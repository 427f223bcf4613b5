"""What the outage tests share: restarting Redis, and a client that follows docs/protocol.md through it."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import httpx
import orjson
import redis

from harness.processes import RedisServer
from harness.waiting import Deadline, until
from tests.support import is_terminal

KILLS = {"clean": signal.SIGTERM, "kill -9": signal.SIGKILL}


def start_answering(server: RedisServer, timeout: float = 60) -> None:
    """Start redis-server again on its port, until it answers PING (not LOADING): the moment Redis is back."""
    server.start()
    client = redis.Redis.from_url(server.url)

    def answering() -> bool:
        try:
            return bool(client.ping())
        except redis.exceptions.ConnectionError:  # LOADING is one
            return False

    try:
        until(answering, f"redis-server on {server.port} answering", timeout, interval=0.02)
    finally:
        client.close()


async def follow_sse(base_url: str, task_id: str, token: str, deadline: float = 240) -> tuple[list[dict[str, Any]], int]:
    """Every event of a task over SSE, as docs/protocol.md tells a client to: reconnect after a drop
    with Last-Event-ID, wait Retry-After on a 503. Returns the events and the number of reconnects."""
    events: list[dict[str, Any]] = []
    reconnects = -1
    over = Deadline(lambda: f"task {task_id} ended over SSE (got {len(events)} events)", deadline)
    async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30, read=60)) as client:
        while True:
            over.check()
            reconnects += 1
            headers = {"Last-Event-ID": str(events[-1]["seq"])} if events else {}
            try:
                async with client.stream(
                    "GET", f"/v1/tasks/{task_id}/events", params={"previews": "none", "token": token}, headers=headers
                ) as response:
                    if response.status_code == 503:
                        await asyncio.sleep(float(response.headers["retry-after"]))
                        continue
                    assert response.status_code == 200, (response.status_code, await response.aread())
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            events.append(orjson.loads(line[len("data: "):]))
                            if is_terminal(events[-1]):
                                return events, reconnects
            except (httpx.TransportError, httpx.RemoteProtocolError):
                await asyncio.sleep(0.2)
