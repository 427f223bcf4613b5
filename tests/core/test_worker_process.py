"""The worker in a process of its own: it can die without the API, it is replaced when it stops
answering (SIGSTOP), and it never outlives the API."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import httpx

from tests.support import (
    SMALL,
    assert_run_again_after_one_interruption,
    collect,
    eventually,
    types,
    wait_status,
)

LONG = {"prompt": "long", "width": 256, "height": 256, "num_inference_steps": 100}
# Only a safety net: every wait below ends as soon as its condition holds.
PATIENCE_SECONDS = 120


async def worker_pid(client: httpx.AsyncClient, other_than: int = 0) -> int:
    """The worker process's pid, from its heartbeat (`GET /v1/workers`), once it is not `other_than`."""

    async def new_pid() -> int | None:
        beats = (await client.get("/v1/workers")).json()["data"]
        return beats[0]["pid"] if beats and beats[0]["pid"] not in (0, other_than) else None

    return await eventually(new_pid, "a worker heartbeat with a new pid", PATIENCE_SECONDS)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (the API process has not reaped it yet) is gone for our purpose.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[-1][0] != "Z"


async def wait_gone(pid: int) -> None:
    await eventually(lambda: not alive(pid), f"process {pid} gone", PATIENCE_SECONDS)


async def test_kill_9_of_the_worker_process_requeues_its_task_and_the_server_answers_on(start_server):
    server = start_server()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        pid = await worker_pid(client)
        assert pid != server.pid
        task = (await client.post("/v1/tasks", json=LONG)).json()
        await wait_status(client, task["id"], {"running"})
        os.kill(pid, signal.SIGKILL)

        assert (await client.get("/healthz")).status_code == 200  # the API lives on without its worker
        assert (await client.get(f"/v1/tasks/{task['id']}")).status_code == 200
        events = await collect(server.ws_url, task["id"], task["token"], previews="none")
        assert_run_again_after_one_interruption(events, "died (killed by SIGKILL); queued again")

        after = (await client.post("/v1/tasks", json={"prompt": "after", **SMALL})).json()
        assert types(await collect(server.ws_url, after["id"], after["token"], previews="none"))[-1] == "task_postprocess_end"
        assert await worker_pid(client, other_than=pid) != pid
        assert (await client.get("/readyz")).status_code == 200


async def test_a_stopped_worker_process_is_reported_then_replaced_and_its_task_runs_again(start_server):
    server = start_server("--heartbeat", "0.5", "--visibility-timeout", "6")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        pid = await worker_pid(client)
        task = (await client.post("/v1/tasks", json=LONG)).json()
        await wait_status(client, task["id"], {"running"})
        os.kill(pid, signal.SIGSTOP)
        try:
            # Silent past three beats: not live, and the server not ready, while it still holds the task.
            async def reported() -> bool:
                ready = await client.get("/readyz")
                beat = (await client.get("/v1/workers")).json()["data"][0]
                return ready.status_code == 503 and ready.json()["workers"][0]["live"] is False and not beat["live"]
            await eventually(reported, "the silent worker reported by /readyz and /v1/workers")
            beat = (await client.get("/v1/workers")).json()["data"][0]
            assert beat["pid"] == pid and beat["task"] == task["id"]
            assert time.time() - beat["beat_at"] >= 1.5
            # Silent past the visibility timeout: killed, its task queued again, a new process started.
            await wait_gone(pid)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        assert await worker_pid(client, other_than=pid) != pid
        events = await collect(server.ws_url, task["id"], task["token"], previews="none")
        assert_run_again_after_one_interruption(events, "stopped responding (no heartbeat for")
        await eventually(lambda: _ready(client), "ready again with the new worker")
    assert "killing it" in server.log()


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def test_the_worker_process_ends_with_the_api_process(start_server):
    server = start_server()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        pid = await worker_pid(client)
        task = (await client.post("/v1/tasks", json=LONG)).json()
        await wait_status(client, task["id"], {"running"})
    server.kill()  # kill -9: the worker process sees its channel close and stops at once
    await wait_gone(pid)

    server = start_server()  # and a clean stop stops it too
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        pid = await worker_pid(client)
    assert server.stop(signal.SIGTERM) == -signal.SIGTERM
    await wait_gone(pid)
