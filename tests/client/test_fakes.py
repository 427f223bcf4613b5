"""What the real server rarely does on demand, from a scripted stand-in on a loopback port:
a fatal task error, a gap or a duplicate in the stream, a socket closed by a restarting server,
API keys, and retried HTTP refusals."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from latentcast.client import (
    AsyncClient,
    AuthenticationError,
    ErrorEvent,
    InternalServerError,
    RateLimitError,
    TaskFailedError,
)
from latentcast.wire import envelope

TASK = "t1"


def event(seq: int, type_: str, message: Any = None) -> str:
    return json.dumps(envelope(type_, TASK, seq, 1.0 + seq, message or {}))


def done(seq: int) -> str:
    return event(seq, "task_postprocess_end", [
        {"name": "0.png", "contenttype": "image/png", "size": 1, "url": "u", "width": 64, "height": 64, "seed": 1}
    ])


class FakeServer:
    """`script(since)` gives the frames to send after `subscribed`; the string "CLOSE" closes with 1012."""

    def __init__(self, script: Callable[[int], list[str]], *, api_key: str | None = None, last_seq: int = 0) -> None:
        self.script = script
        self.api_key = api_key
        self.last_seq = last_seq
        self.subscriptions: list[dict[str, Any]] = []
        self.requests: list[Request] = []
        self.url = ""

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.requests.append(request)
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._json(connection, 401, {"error": {"type": "unauthorized", "message": "an API key is required"}})
        if request.path.startswith("/v1/tasks/"):
            return self._json(connection, 200, {"id": TASK, "status": "running", "last_seq": self.last_seq})
        return None

    @staticmethod
    def _json(connection: ServerConnection, status: int, body: Any) -> Response:
        response = connection.respond(status, json.dumps(body))
        response.headers["Content-Type"] = "application/json"
        return response

    async def handler(self, ws: ServerConnection) -> None:
        async for raw in ws:
            message = json.loads(raw)
            self.subscriptions.append(message)
            await ws.send(json.dumps({"type": "subscribed", "id": message["id"], "since": message["since"]}))
            for frame in self.script(message["since"]):
                if frame == "CLOSE":
                    await ws.close(1012, "restarting")
                    return
                await ws.send(frame)


@pytest.fixture
async def fake() -> AsyncIterator[Callable[..., Any]]:
    servers = []

    async def start(script: Callable[[int], list[str]], **kwargs: Any) -> FakeServer:
        fake = FakeServer(script, **kwargs)
        server = await serve(fake.handler, "127.0.0.1", 0, process_request=fake.process_request).__aenter__()
        servers.append(server)
        fake.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return fake

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_a_fatal_task_error_is_a_task_failed_error_with_the_servers_message(fake) -> None:  # type: ignore[no-untyped-def]
    frames = [
        event(1, "task_queue", {"position": 1, "queue_length": 1}),
        event(2, "task_start", {"steps": 4}),
        event(3, "task_error", {"code": "interrupted", "message": "the worker restarted"}),
        event(4, "task_error_full", "Traceback ...\nOutOfMemoryError"),
        event(5, "task_error", {"code": "out_of_memory", "message": "CUDA out of memory", "fatal": True}),
    ]
    server = await fake(lambda since: frames[since:], last_seq=2)
    async with AsyncClient(server.url) as client:
        task = client.task(TASK, "secret")
        with pytest.raises(TaskFailedError) as failed:
            await task.result()
        assert failed.value.code == "out_of_memory" and failed.value.message == "CUDA out of memory"
        assert str(failed.value) == "task t1 failed (out_of_memory): CUDA out of memory"
        assert server.subscriptions[0] == {"type": "subscribe", "id": TASK, "since": 1, "previews": "none", "token": "secret"}
        assert server.requests[0].headers["X-Task-Token"] == "secret"

        events = [e async for e in client.task(TASK, "secret").events()]
        assert [e.seq for e in events] == [1, 2, 3, 4, 5]
        warning, fatal = events[2], events[4]
        assert isinstance(warning, ErrorEvent) and not warning.terminal
        assert isinstance(fatal, ErrorEvent) and fatal.terminal and fatal.fatal


async def test_a_gap_or_a_duplicate_in_the_stream_is_repaired(fake) -> None:  # type: ignore[no-untyped-def]
    def script(since: int) -> list[str]:
        if since == 0:
            return [event(1, "task_queue"), event(2, "task_accept"), event(2, "task_accept"), event(4, "task_start")]
        return [event(seq, "task_output", f"line {seq}") for seq in range(since + 1, 5)] + [done(5)]

    server = await fake(script)
    async with AsyncClient(server.url, reconnect_delay=(0.01, 0.02)) as client:
        task = client.task(TASK)
        events = [e async for e in task.events(previews="json")]
    assert [e.seq for e in events] == [1, 2, 3, 4, 5] and events[3].type == "task_output"
    assert [s["since"] for s in server.subscriptions] == [0, 2] and task.reconnects == 1
    assert "token" not in server.subscriptions[0] and server.subscriptions[0]["previews"] == "json"


async def test_a_socket_closed_by_a_restarting_server_is_resumed(fake) -> None:  # type: ignore[no-untyped-def]
    def script(since: int) -> list[str]:
        if since == 0:
            return [event(1, "task_queue"), event(2, "task_accept"), "CLOSE"]
        return [event(3, "task_start"), done(4)]

    server = await fake(script)
    async with AsyncClient(server.url, reconnect_delay=(0.01, 0.02)) as client:
        task = client.task(TASK, "tok")
        assert [e.seq for e in [e async for e in task.events()]] == [1, 2, 3, 4]
        assert [o.name for o in await task.result()] == ["0.png"]  # the terminal event was kept
    assert [s["since"] for s in server.subscriptions] == [0, 2]


async def test_api_key_on_requests_and_sockets(fake) -> None:  # type: ignore[no-untyped-def]
    server = await fake(lambda since: [event(1, "task_queue"), done(2)][since:], api_key="k-123")
    async with AsyncClient(server.url) as anonymous:
        with pytest.raises(AuthenticationError, match="an API key is required") as refused:
            await anext(anonymous.task(TASK, "tok").events())
        assert refused.value.status_code == 401
        with pytest.raises(AuthenticationError, match="an API key is required"):
            await anonymous.get(TASK)
    async with AsyncClient(server.url, api_key="k-123") as keyed:
        assert (await keyed.get(TASK)).status == "running"
        assert [e.seq for e in [e async for e in keyed.task(TASK, "tok").events()]] == [1, 2]
    assert all(r.headers.get("Authorization") == "Bearer k-123" for r in server.requests[-2:])


async def test_http_refusals_that_are_safe_to_repeat_are_retried() -> None:
    calls: list[str] = []
    answers: list[httpx.Response] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return answers.pop(0)

    full = {"error": {"type": "queue_full", "message": "the queue holds 3 tasks"}}
    created = {"id": "t9", "status": "queued", "token": "tok", "last_seq": 1}
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = AsyncClient("http://latentcast.test", http_client=http, reconnect_delay=(0.001, 0.002))
        answers[:] = [httpx.Response(429, json=full, headers={"Retry-After": "0"}), httpx.Response(201, json=created)]
        task = await client.submit("a cat")
        assert (task.id, task.token, calls) == ("t9", "tok", ["POST", "POST"])

        answers[:] = [httpx.Response(429, json=full, headers={"Retry-After": "0"})] * 3
        with pytest.raises(RateLimitError, match="the queue holds 3 tasks") as limited:
            await client.submit("a cat")
        assert limited.value.retry_after == 0.0 and len(calls) == 5

        answers[:] = [httpx.Response(503, text="busy"), httpx.Response(200, json={"id": "t9", "status": "queued"})]
        assert (await client.get("t9")).status == "queued"  # a GET is repeated
        answers[:] = [httpx.Response(503, text="busy")]
        with pytest.raises(InternalServerError):
            await client.submit("a cat")  # a POST that reached the server is not
        await client.close()
        assert not http.is_closed  # a given http_client is left to its owner
