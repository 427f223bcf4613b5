"""A full disk under a running server (`--data-dir` on a small tmpfs), as issue 30 found it: full for
a few seconds mid-task, at submit, at the final write, and across a restart. Afterwards every task
has reached one terminal event, every stored log is gapless, every replay (WebSocket and SSE)
completes, new tasks run, and the log says when the disk filled and when it came back.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.scaleout.outage import follow_sse
from tests.small_disk import SmallDisk
from tests.support import (
    ServerProcess,
    collect,
    decode_frame,
    eventually,
    is_terminal,
    seqs,
    subscribe,
    types,
    wait_status,
)

ARGS = ("--max-steps", "1000", "--preview-min-interval", "0")
# Long enough that the disk fills while it runs: SQLite writes on into the free pages of its WAL
# (at most 100, server.backends.sqlite_store) for a few dozen steps (a preview and two events each).
LONG = {"prompt": "running while the disk fills", "width": 256, "height": 256, "num_inference_steps": 300}
QUICK = {"prompt": "after the disk came back", "width": 64, "height": 64, "num_inference_steps": 4}
# Running when the server is killed, and run again in full after the restart.
INTERRUPTED = {"prompt": "running when the server stops", "width": 64, "height": 64, "num_inference_steps": 100}
FULL = "database or disk is full"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with SmallDisk(tmp_path / "disk", size="24m") as mounted:
        yield mounted


@pytest.fixture
def serve(tmp_path: Path, disk: SmallDisk) -> Iterator[Any]:
    """Start servers whose data dir is on the small disk and whose logs are not."""
    started: list[ServerProcess] = []

    def start() -> ServerProcess:
        server = ServerProcess(disk.path / "data", *ARGS, log_dir=tmp_path / "logs")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.kill()


@pytest.fixture
async def http(serve: Any) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    server = serve()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        yield server, client


def assert_whole(events: list[dict[str, Any]], last: str = "task_postprocess_end") -> None:
    assert seqs(events) == list(range(1, len(events) + 1)), "seq counts 1, 2, 3, ... with no gap"
    assert [is_terminal(e) for e in events].count(True) == 1, "exactly one terminal event"
    assert types(events)[-1] == last, types(events)[-3:]


async def assert_replays_whole(server: ServerProcess, task: dict[str, Any], last: str = "task_postprocess_end") -> list[dict[str, Any]]:
    """The task's whole log, replayed from 0 over the WebSocket and over SSE: the same, gapless."""
    over_ws = await collect(server.ws_url, task["id"], task["token"], previews="none")
    over_sse, _ = await follow_sse(server.base_url, task["id"], task["token"])
    assert_whole(over_ws, last)
    assert seqs(over_sse) == seqs(over_ws) and types(over_sse) == types(over_ws)
    return over_ws


async def runs(client: httpx.AsyncClient, server: ServerProcess) -> None:
    """A new task is taken and runs to its end."""
    task = (await client.post("/v1/tasks", json=QUICK)).json()
    assert_whole(await collect(server.ws_url, task["id"], task["token"], previews="none"))


def logged(server: ServerProcess, pattern: str) -> int:
    return len(re.findall(pattern, server.log()))


async def test_full_for_a_few_seconds_mid_task_is_waited_out_with_no_hole(http, disk: SmallDisk) -> None:
    server, client = http
    task = (await client.post("/v1/tasks", json=LONG)).json()
    live: list[dict[str, Any]] = []
    async with websockets.connect(server.ws_url, max_size=None) as ws:
        await subscribe(ws, task["id"], task["token"], previews="binary")
        while not any(e.get("type") == "task_progress" for e in live):
            live.append(decode_frame(await asyncio.wait_for(ws.recv(), 120)))
        disk.fill()
        # The worker finds the disk full at its next write that needs a page, and says so once.
        await eventually(lambda: (logged(server, rf"task {task['id']}: recording: backend unreachable .*{FULL}") == 1),
                         "the worker's write refused")
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["store"] == "unreachable"
        refused = await client.post("/v1/tasks", json=QUICK)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
        assert "is full" in refused.json()["error"]["message"]
        assert (await client.post(f"/v1/tasks/{task['id']}/cancel")).status_code == 503
        listed = (await client.get("/v1/tasks", params={"limit": 100})).json()["data"]
        assert [t["id"] for t in listed] == [task["id"]], "the refused submission left nothing behind"
        disk.free()
        while not is_terminal(live[-1]):
            live.append(decode_frame(await asyncio.wait_for(ws.recv(), 120)))
    events = [e for e in live if "seq" in e]
    assert_whole(events)
    assert logged(server, rf"task {task['id']}: recording: backend reachable again") == 1
    assert (await client.get("/readyz")).status_code == 200
    assert seqs(await assert_replays_whole(server, task)) == seqs(events)
    await runs(client, server)
    assert "Traceback" not in server.log()


async def test_full_at_submit_answers_503_and_changes_nothing(http, disk: SmallDisk) -> None:
    server, client = http
    before = (await client.get("/v1/tasks")).json()["data"]
    disk.fill()
    for door, body in (("/v1/tasks", QUICK), ("/v1/images/generations", {"model": "stable-diffusion-v3-medium", "prompt": "full", "image_size": "square"})):
        refused = await client.post(door, json=body)
        assert refused.status_code == 503, (door, refused.text)
        assert refused.headers["retry-after"] == "2"
        assert re.search(r"the disk under .* is full", refused.text), refused.text
    ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["store"] == "unreachable"
    assert (await client.get("/v1/tasks")).json()["data"] == before
    disk.free()
    await eventually(lambda: _status(client.get("/readyz"), 200), "ready again")
    await runs(client, server)
    assert "Traceback" not in server.log()


async def test_full_at_the_final_write_is_waited_out(http, disk: SmallDisk) -> None:
    """The events fit; the picture (a 1024 px PNG of noise, megabytes) does not."""
    server, client = http
    big = {"prompt": "a picture larger than the room left", "width": 1024, "height": 1024, "num_inference_steps": 2}
    task = (await client.post("/v1/tasks", json=big)).json()
    await wait_status(client, task["id"], {"running", "postprocessing", "completed"})
    disk.fill(leave=2 << 20)  # the events fit; its three megabytes of PNG do not
    await eventually(lambda: (logged(server, r"recording: backend unreachable .*outputs folder .*No space left") == 1),
                     "the output's write refused")
    disk.free()
    detail = await wait_status(client, task["id"], {"completed"})
    picture = await client.get(detail["outputs"][0]["url"])
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    assert len(picture.content) == detail["outputs"][0]["size"]
    await assert_replays_whole(server, task)
    await runs(client, server)


async def test_full_across_a_restart_waits_then_runs_the_interrupted_task_again(serve, disk: SmallDisk) -> None:
    server = serve()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        task = (await client.post("/v1/tasks", json=INTERRUPTED)).json()
        await wait_status(client, task["id"], {"running"})
    disk.fill()
    server.kill()
    server = ServerProcess(server.data_dir, *ARGS, port=server.port, log_dir=server.log_path.parent)
    server.start(wait=False)
    await eventually(lambda: (logged(server, r"recovering unfinished tasks: backend unreachable") >= 1),
                     "the restarted server waiting for the disk")
    disk.free()
    server.wait_ready()
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            events = await assert_replays_whole(server, task)
            assert [e["message"]["attempt"] for e in events if e["type"] == "task_accept"] == [1, 2]
            assert "the server stopped while this task was running" in next(
                e["message"]["message"] for e in events if e["type"] == "task_error")
            await runs(client, server)
    finally:
        server.kill()
    assert logged(server, r"recovering unfinished tasks: backend reachable again") == 1



async def _status(answer: Any, status: int) -> bool:
    return (await answer).status_code == status
