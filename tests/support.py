"""Test support: real clients of the real server, and the processes (from harness.processes, re-exported
here because most tests import everything they need from this one module)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import httpx
import orjson
import websockets

from harness.processes import ROOT, RedisServer, ServerProcess, free_port  # noqa: F401 (re-exported)
from harness.waiting import eventually  # noqa: F401 (re-exported)
from latentcast import wire
from latentcast.wire import ends_stream as is_terminal

SMALL = {"width": 64, "height": 64, "num_inference_steps": 4}
# A server whose webhooks may reach receivers on loopback, retried within a fraction of a second.
HOOK_FLAGS = (
    "--webhook-allow-private", "--webhook-first-retry", "0.05", "--webhook-max-retry-delay", "0.5",
    "--webhook-timeout", "3",
)


# Webhook URLs of each inward address class, and how a refusal names it (a regular expression):
# a server without --webhook-allow-private refuses each, whichever door it is given at.
INWARD_URLS = [
    ("http://127.0.0.1:9/hook", r"127\.0\.0\.1 is a loopback address"),
    ("http://[::1]:9/hook", r"::1 is a loopback address"),
    ("http://10.0.0.8/hook", r"10\.0\.0\.8 is a private address"),
    ("http://172.16.5.4/hook", r"172\.16\.5\.4 is a private address"),
    ("http://172.31.0.9/hook", r"172\.31\.0\.9 is a private address"),
    ("http://192.168.1.20/hook", r"192\.168\.1\.20 is a private address"),
    ("http://169.254.10.10/hook", r"169\.254\.10\.10 is a link-local address"),
    ("http://169.254.169.254/latest/meta-data/", r"169\.254\.169\.254 is a cloud metadata address"),
    ("http://[fd00:ec2::254]/latest", r"fd00:ec2::254 is a cloud metadata address"),
    ("http://[fc00::5]/hook", r"fc00::5 is a unique-local address"),
    ("http://[fdab:cdef::1]/hook", r"fdab:cdef::1 is a unique-local address"),
    ("http://localhost:9/hook", r"localhost resolves to (127\.0\.0\.1|::1), which is a loopback address"),
]


def server_webhook_secret(server: ServerProcess) -> str:
    """The secret that signs the webhooks of `server`'s tasks made without a key, as its operator
    reads it (`latentcast keys server-webhook-secret`, pointed at the server's store)."""
    where = ["--data-dir", str(server.data_dir)]
    if "--broker" in server.args:
        where += ["--broker", server.args[server.args.index("--broker") + 1]]
    shown = subprocess.run(
        [sys.executable, "-m", "latentcast", "keys", "server-webhook-secret", *where],
        capture_output=True, text=True, check=True, timeout=120,
    )
    return shown.stdout.strip()


def decode_frame(frame: str | bytes) -> dict[str, Any]:
    """A WebSocket message as an event dict (`wire.decode_frame`); a binary preview frame's image
    bytes go in `_image`."""
    envelope, image = wire.decode_frame(frame)
    if image is not None:
        envelope["_image"] = image
    return envelope


async def subscribe(ws: Any, task_id: str, token: str | None, since: int = 0, previews: str = "json") -> None:
    message: dict[str, Any] = {"type": "subscribe", "id": task_id, "since": since, "previews": previews}
    if token is not None:
        message["token"] = token
    await ws.send(orjson.dumps(message).decode())


async def collect(
    ws_url: str, task_id: str, token: str | None, since: int = 0, previews: str = "json", timeout: float = 120
) -> list[dict[str, Any]]:
    """Every event of one task from `since` to its terminal event (control messages left out)."""
    events: list[dict[str, Any]] = []
    async with websockets.connect(ws_url, max_size=None) as ws:
        await subscribe(ws, task_id, token, since, previews)
        async with asyncio.timeout(timeout):
            while True:
                event = decode_frame(await ws.recv())
                if "seq" not in event:
                    assert event["type"] == "subscribed", event
                    continue
                events.append(event)
                if is_terminal(event):
                    return events


async def collect_from_the_start(
    server: ServerProcess, client: httpx.AsyncClient, body: dict[str, Any], previews: str = "json"
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Submit `body` and follow it live from its first step, so that it gets every preview (a
    subscriber that joins late gets only the newest): a long task holds the server's one worker
    until the socket has subscribed, then is cancelled."""
    long = {"prompt": "blocker", "width": 512, "height": 512, "num_inference_steps": 100}
    blocker = await client.post("/v1/tasks", json=long)
    task = (await client.post("/v1/tasks", json=body)).json()
    events: list[dict[str, Any]] = []
    async with websockets.connect(server.ws_url, max_size=None) as ws:
        await subscribe(ws, task["id"], task["token"], previews=previews)
        assert decode_frame(await ws.recv())["type"] == "subscribed"
        assert (await client.post(f"/v1/tasks/{blocker.json()['id']}/cancel")).status_code == 202
        while not events or not is_terminal(events[-1]):
            event = decode_frame(await asyncio.wait_for(ws.recv(), 120))
            if "seq" in event:
                events.append(event)
    return task, events


def previewed_steps(events: Sequence[dict[str, Any]], steps: int) -> list[dict[str, Any]]:
    """The progress events that still carry their preview, once what latest-wins promises holds.

    Every step has its progress event, but a reader that falls behind keeps only the newest preview
    (docs/protocol.md), so which earlier steps keep theirs depends on the machine's load; the last
    step's preview never has a newer one to give way to."""
    progress = [e for e in events if e["type"] == "task_progress"]
    assert [e["message"]["step"] for e in progress] == list(range(1, steps + 1))
    assert "preview" in progress[-1]["message"]
    return [e for e in progress if "preview" in e["message"]]


def types(events: Sequence[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def seqs(events: Sequence[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in events]


async def wait_status(client: httpx.AsyncClient, task_id: str, statuses: set[str], timeout: float = 60) -> dict[str, Any]:
    """The task's detail once its status is one of `statuses`."""

    async def reached() -> dict[str, Any] | None:
        detail: dict[str, Any] = (await client.get(f"/v1/tasks/{task_id}")).json()
        return detail if detail["status"] in statuses else None

    return await eventually(reached, f"task {task_id} reaching {statuses}", timeout)


def assert_run_again_after_one_interruption(events: Sequence[dict[str, Any]], why: str) -> None:
    """A task's whole stream, interrupted once (`why` in its `task_error`), then queued and run
    again to completion: gapless, attempts 1 and 2, `task_error`, `task_queue`, `task_accept`."""
    assert seqs(events) == list(range(1, len(events) + 1))
    kinds = types(events)
    assert kinds[-1] == "task_postprocess_end"
    error = next(e for e in events if e["type"] == "task_error")
    assert error["message"]["code"] == "interrupted"
    assert why in error["message"]["message"]
    assert [e["message"]["attempt"] for e in events if e["type"] == "task_accept"] == [1, 2]
    assert kinds[kinds.index("task_error") :][:3] == ["task_error", "task_queue", "task_accept"]
