"""Helpers of the security tests: API keys made and revoked with the real `latentcast keys` CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.support import ROOT, ServerProcess

TINY = {"prompt": "a lighthouse", "width": 64, "height": 64, "num_inference_steps": 2}

# every endpoint that takes a body, with a body it accepts
BODIES: dict[str, dict[str, Any]] = {
    "/v1/tasks": TINY,
    "/v1/images/generations": {"model": "stable-diffusion-v3-medium", "prompt": "a", "num_inference_steps": 1},
    "/v1/Run/stabilityai/stable-diffusion-3-medium": {"prompt": "a", "width": 64, "height": 64, "steps": 1},
    "/v1/stable-diffusion-3-medium-txt2img": {"prompt": "a"},
    "/api/generate/sdv3/textToImage": {"prompt": "a", "width": 320, "height": 320},
    "/v1/Task/Detail": {"taskid": "0123456789abcdef"},
    "/v1/Task/Cancel": {"taskid": "0123456789abcdef"},
    "/v1/Task/Kill": {"taskid": "0123456789abcdef"},
}


def keys_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`latentcast keys ...` as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "latentcast", "keys", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def where(data_dir: Path, broker: str | None = None) -> list[str]:
    return ["--data-dir", str(data_dir), *(["--broker", broker] if broker else [])]


def create_key(data_dir: Path, name: str, *args: str, broker: str | None = None) -> dict[str, Any]:
    """A new key: {id, name, key, secret, admin}."""
    done = keys_cli("create", "--name", name, "--json", *args, *where(data_dir, broker))
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)


def revoke_key(data_dir: Path, key_id: str, broker: str | None = None) -> None:
    done = keys_cli("revoke", key_id, *where(data_dir, broker))
    assert done.returncode == 0, done.stderr


def bearer(key: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['key']}"}


async def count_tasks(http: Any) -> int:
    """Every task the server has (a server without keys lists them all): nothing refused adds one."""
    return len((await http.get("/v1/tasks", params={"limit": 200})).json()["data"])


async def sse_until_revoked(base_url: str, task_id: str, key: dict[str, Any], revoke: Callable[[], None]) -> list[dict[str, Any]]:
    """Follow a task's SSE stream opened with `key`, call `revoke` once the first event arrived, and
    read on until the stream ends: every event it carried."""
    events: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        url = f"/v1/tasks/{task_id}/events"
        async with asyncio.timeout(120), http.stream("GET", url, params={"previews": "none"}, headers=bearer(key)) as sse:
            assert sse.status_code == 200
            async for line in sse.aiter_lines():
                if line.startswith("data: "):
                    events.append(orjson.loads(line[len("data: "):]))
                    if len(events) == 1:
                        await asyncio.to_thread(revoke)  # the real CLI, as an operator runs it
    return events


def raw_exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send exactly these bytes (no client tidies the path or the framing) and read until the
    server closes the connection or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return answer


def parse_response(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one HTTP/1.1 response."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def in_its_shape(path: str, answer: httpx.Response) -> None:
    """A refusal in the shape its API documents: a 4xx with JSON (Wiro: 200, result false)."""
    assert answer.headers["content-type"] == "application/json", answer.text
    body = answer.json()
    if "/Run/" in path or "/Task/" in path:
        assert answer.status_code == 200 and body["result"] is False and body["errors"][0]["message"]
        return
    assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)
    if path == "/v1/tasks":
        assert body["error"]["type"] and body["error"]["message"]
    elif path == "/v1/images/generations":
        assert body["statusCode"] == answer.status_code and body["message"]
    elif path == "/v1/stable-diffusion-3-medium-txt2img":
        assert body["error"]
    elif path.startswith("/api/generate"):
        assert body["code"] == -1 and body["data"] is None
    else:
        raise AssertionError(path)


@dataclasses.dataclass
class Keyed:
    """A server that requires keys; alice and bob own their own tasks, ops is an admin."""

    server: ServerProcess
    alice: dict[str, Any]
    bob: dict[str, Any]
    ops: dict[str, Any]
