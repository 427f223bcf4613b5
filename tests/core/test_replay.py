"""Replay goes at the pace of the client's reading: a fast reader of many finished tasks is never
judged a slow client, however small its queue."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.support import (
    SMALL,
    RedisServer,
    ServerProcess,
    decode_frame,
    eventually,
    is_terminal,
    subscribe,
    wait_status,
)

TASKS = 100  # the most one socket may follow at once (--max-subscriptions)
QUEUE = 8  # --subscriber-queue: far fewer than the events replayed
LONG_LOG = 20  # events the long task records before the worker stops: its steps and previews


@pytest.fixture(params=["sqlite", "redis"])
def paced(request: pytest.FixtureRequest, start_server: Callable[..., ServerProcess], tmp_path: Path) -> Iterator[ServerProcess]:
    args = ["--subscriber-queue", str(QUEUE), "--preview-min-interval", "0"]
    redis = RedisServer(tmp_path / "redis").start() if request.param == "redis" else None
    if redis is not None:
        args += ["--broker", redis.url]
    server = start_server(*args)
    yield server
    server.kill()  # before its redis-server: a front-end waits for Redis to shut down
    if redis is not None:
        redis.stop()


async def finished_tasks(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """TASKS finished tasks, made quickly: one that ran for a while (a long log, with previews) and
    was cancelled, the others cancelled while they waited behind it. The worker is stopped
    (SIGSTOP) while they are queued and cancelled, so none of them can finish first, however slow
    the machine."""
    long = (await http.post("/v1/tasks", json={"prompt": "long", "width": 256, "height": 256, "num_inference_steps": 100})).json()
    await wait_for_events(http, long["id"], LONG_LOG)
    worker = (await http.get("/v1/workers")).json()["data"][0]["pid"]
    assert worker > 0, "the worker has not said its pid"
    os.kill(worker, signal.SIGSTOP)
    try:
        waiting = [(await http.post("/v1/tasks", json={**SMALL, "prompt": "waits"})).json() for _ in range(TASKS - 1)]
        for task in [*waiting, long]:
            assert (await http.post(f"/v1/tasks/{task['id']}/cancel")).status_code == 202
    finally:
        os.kill(worker, signal.SIGCONT)
    await wait_status(http, long["id"], {"cancelled"})
    return [long, *waiting]


async def wait_for_events(http: httpx.AsyncClient, task_id: str, count: int, timeout: float = 60) -> None:
    """Until the task has recorded `count` events."""

    async def recorded() -> bool:
        return (await http.get(f"/v1/tasks/{task_id}")).json()["last_seq"] >= count

    await eventually(recorded, f"task {task_id} records {count} events", timeout)


async def test_a_fast_reader_gets_100_finished_tasks_on_one_socket_in_order(paced: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=paced.base_url, timeout=60) as http:
        tasks = await finished_tasks(http)

    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    async with websockets.connect(paced.ws_url, max_size=None) as ws:
        for task in tasks:
            await subscribe(ws, task["id"], task["token"], previews="binary")
        finished = 0
        async with asyncio.timeout(120):  # a safety net: a few thousand frames take a second
            while finished < TASKS:
                frame = decode_frame(await ws.recv())
                assert frame["type"] != "error", frame
                if "seq" in frame:
                    events[frame["id"]].append(frame)
                    finished += is_terminal(frame)
        assert ws.close_code is None  # still open: nobody closed it as too slow

    assert sum(len(log) for log in events.values()) > 10 * QUEUE
    for task in tasks:
        log = events[task["id"]]
        assert [e["seq"] for e in log] == list(range(1, len(log) + 1)), task["id"]
        assert log[-1]["type"] == "task_cancel"
    assert any("_image" in e for e in events[tasks[0]["id"]])  # the newest preview, as a binary frame
