"""Restarts lose nothing: kill -9 mid-task, SIGTERM with and without time to finish."""

from __future__ import annotations

import signal

import httpx

from tests.support import SMALL, assert_run_again_after_one_interruption, collect, types, wait_status

LONG = {"prompt": "long", "width": 256, "height": 256, "num_inference_steps": 100}


async def test_kill_9_mid_task_then_restart_runs_everything(start_server, tmp_path):
    server = start_server()
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        running = (await client.post("/v1/tasks", json=LONG)).json()
        queued = [(await client.post("/v1/tasks", json={"prompt": f"q{i}", **SMALL})).json() for i in range(3)]
        await wait_status(client, running["id"], {"running"})
    server.kill()

    server = start_server()  # same data dir
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        interrupted = await collect(server.ws_url, running["id"], running["token"], previews="none")
        assert_run_again_after_one_interruption(interrupted, "the server stopped while this task was running")

        for task in queued:
            events = await collect(server.ws_url, task["id"], task["token"], previews="none")
            assert types(events)[-1] == "task_postprocess_end"
            assert types(events).count("task_accept") == 1

        listed = (await client.get("/v1/tasks", params={"limit": 10})).json()["data"]
        assert {t["id"] for t in listed} == {running["id"], *(t["id"] for t in queued)}
        assert {t["status"] for t in listed} == {"completed"}


async def test_sigterm_lets_the_running_task_finish(start_server):
    server = start_server("--shutdown-grace", "60")
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        task = (await client.post("/v1/tasks", json={**LONG, "num_inference_steps": 30})).json()
        await wait_status(client, task["id"], {"running"})
    assert server.stop(signal.SIGTERM) == -signal.SIGTERM  # uvicorn re-raises the signal once shut down

    server = start_server()
    events = await collect(server.ws_url, task["id"], task["token"], previews="none")
    assert types(events).count("task_accept") == 1  # finished before the first process exited
    assert types(events)[-1] == "task_postprocess_end"


async def test_sigterm_requeues_a_task_that_cannot_finish_in_time(start_server):
    server = start_server("--shutdown-grace", "0")
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        task = (await client.post("/v1/tasks", json=LONG)).json()
        await wait_status(client, task["id"], {"running"})
    assert server.stop(signal.SIGTERM) == -signal.SIGTERM  # uvicorn re-raises the signal once shut down

    server = start_server()
    events = await collect(server.ws_url, task["id"], task["token"], previews="none")
    assert_run_again_after_one_interruption(events, "the server is shutting down")


async def test_a_task_interrupted_too_often_fails_with_the_reason(start_server):
    server = start_server()
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        task = (await client.post("/v1/tasks", json=LONG)).json()
    for _ in range(3):
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            await wait_status(client, task["id"], {"running"})
        server.kill()
        server = start_server()
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        detail = await wait_status(client, task["id"], {"failed"})
    assert detail["error"]["code"] == "interrupted"
    assert "gave up after 3 attempts" in detail["error"]["message"]
