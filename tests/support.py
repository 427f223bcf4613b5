"""Test support: the real server in a subprocess on a loopback port, and real clients for it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets

ROOT = Path(__file__).resolve().parent.parent
TERMINAL_TYPES = ("task_postprocess_end", "task_cancel")
SMALL = {"width": 64, "height": 64, "num_inference_steps": 4}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_terminal(event: dict[str, Any]) -> bool:
    if event["type"] in TERMINAL_TYPES:
        return True
    message = event.get("message")
    return event["type"] == "task_error" and isinstance(message, dict) and message.get("fatal") is True


class ServerProcess:
    """`latentcast serve` as a user runs it, with its own data dir and port."""

    def __init__(self, data_dir: Path, *args: str, port: int | None = None, command: str = "serve") -> None:
        self.data_dir = data_dir
        self.args = list(args)
        self.port = port or free_port()
        self.command = command
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"server-{self.port}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def start(self, wait: bool = True) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "latentcast", self.command, "--port", str(self.port), "--data-dir", str(self.data_dir), *self.args],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def send_signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def decode_frame(frame: str | bytes) -> dict[str, Any]:
    """A WebSocket message as an event dict; a binary preview frame gets `_image` (the bytes)."""
    if isinstance(frame, bytes):
        (length,) = struct.unpack(">I", frame[:4])
        event = orjson.loads(frame[4 : 4 + length])
        event["_image"] = frame[4 + length :]
        return event
    return orjson.loads(frame)


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
        deadline = time.monotonic() + timeout
        while True:
            frame = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
            event = decode_frame(frame)
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


def types(events: Sequence[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def seqs(events: Sequence[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in events]


async def wait_status(client: httpx.AsyncClient, task_id: str, statuses: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = (await client.get(f"/v1/tasks/{task_id}")).json()
        if detail["status"] in statuses:
            return detail
        await asyncio.sleep(0.02)
    raise TimeoutError(f"task {task_id} never reached {statuses}; last: {detail['status']}")


class RedisServer:
    """A redis-server of the test's own on a free port (AOF on, so a restart keeps the queue)."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--maxmemory-policy", "noeviction",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)
