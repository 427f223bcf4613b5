"""`AsyncClient` and `Task`: submit, follow, cancel and collect tasks of a Latentcast server.

    async with AsyncClient("http://127.0.0.1:8000") as client:
        images = await client.run("a lighthouse at dusk", width=512, height=512)  # one call
        images[0].save("lighthouse.png")

        task = await client.submit(prompt="a lighthouse at dusk", width=512, height=512)
        async for event in task.events():
            ...
        paths = await task.download("out")

HTTP goes through httpx; events come over the server's WebSocket (`/v1/ws`). When the socket
drops, `Task.events()` reconnects with backoff and resubscribes with `since` = the last seq it
yielded, so the caller sees every event exactly once and in order.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import inspect
import json
import logging
import os
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, Unpack
from urllib.parse import urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

from latentcast.client.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    TaskCancelledError,
    TaskFailedError,
    error_from_response,
    error_from_socket,
)
from latentcast.client.events import CancelEvent, ErrorEvent, Event, PostprocessEndEvent, event_from_envelope
from latentcast.client.models import Delivery, GeneratedImage, Output, TaskInfo, TaskPage
from latentcast.client.task_options import TaskOptions, submit_body
from latentcast.client.version import __version__
from latentcast.wire import PREVIEW_MODES, Cursor, FrameError, Gap, PreviewMode, decode_frame

__all__ = ["API_KEY_VARIABLE", "DEFAULT_BASE_URL", "AsyncClient", "Task"]

log = logging.getLogger("latentcast.client")

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
API_KEY_VARIABLE = "LATENTCAST_API_KEY"  # where the API key comes from when none is given
DEFAULT_TIMEOUT = 60.0
USER_AGENT = f"latentcast-python/{__version__}"
# Previews are at most 512 px WebP/JPEG; this only guards against a runaway frame.
MAX_FRAME_BYTES = 32 * 1024 * 1024
# A socket that stayed up this long counts as healthy: the reconnect budget starts again.
HEALTHY_CONNECTION_SECONDS = 30.0


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Exponential backoff with jitter: about initial * 2^(attempt-1), at most `maximum`."""
    delay = min(maximum, initial * float(2 ** max(0, attempt - 1)))
    return delay * random.uniform(0.5, 1.0)


def socket_url(base_url: str) -> str:
    """The WebSocket URL of a server: http(s)://host/prefix -> ws(s)://host/prefix/v1/ws."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/v1/ws", "", ""))


class AsyncClient:
    """A client of one Latentcast server.

    Args:
        base_url: the server, e.g. `http://127.0.0.1:8000` (default: `$LATENTCAST_URL`, else that).
        api_key: sent as `Authorization: Bearer` on every request and socket (default:
            `$LATENTCAST_API_KEY`; a server without keys needs none).
        timeout: seconds (or an `httpx.Timeout`) for each HTTP request and for opening a socket.
        max_retries: retries of a request that could not reach the server, or got 429/502/503/504
            (only requests that are safe to repeat: a refused submit changed nothing).
        max_reconnects: consecutive failed reconnects of an event stream before it gives up with
            `APIConnectionError`.
        reconnect_delay: (first, longest) delay in seconds between reconnects; doubles each time.
        http_client: an `httpx.AsyncClient` to use instead of the client's own (it is not closed).

    Use it as `async with AsyncClient(...) as client:` or call `await client.close()`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        max_reconnects: int = 10,
        reconnect_delay: tuple[float, float] = (0.25, 8.0),
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get("LATENTCAST_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_VARIABLE) or None
        self.ws_url = socket_url(self.base_url)
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.max_retries = max_retries
        self.max_reconnects = max_reconnects
        self.reconnect_delay = reconnect_delay
        self._own_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=self.timeout, follow_redirects=True)

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP connections (sockets close with the streams that opened them)."""
        if self._own_http:
            await self._http.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self.base_url!r})"

    # -- tasks -------------------------------------------------------------------------------

    async def submit(self, prompt: str, **options: Unpack[TaskOptions]) -> Task:
        """Queue a generation (`POST /v1/tasks`) and return its `Task`.

        `options` are `TaskOptions` (width, height, num_inference_steps, seed, ...); those left out
        take the server's defaults (see docs/protocol.md).
        Raises `ValidationError` (with `.fields`) for a refused field, `RateLimitError` when
        the queue is full (after the retries).
        """
        body = submit_body(prompt, options)
        # A refused submit changes nothing, so 429 may be retried; a sent request is not repeated.
        response = await self._request("POST", "/v1/tasks", json=body, idempotent=False)
        info = TaskInfo.from_dict(response.json())
        if not info.token:
            raise APIError("the server's answer to a submit has no token", status_code=response.status_code)
        return Task(self, info.id, info.token, info=info)

    async def run(
        self,
        prompt: str,
        *,
        on_event: Callable[[Event], Awaitable[object] | object] | None = None,
        **options: Unpack[TaskOptions],
    ) -> builtins.list[GeneratedImage]:
        """Generate in one call: submit, wait for the task, and return its images with their bytes
        (as `replicate.run` or `fal_client.subscribe` do).

        `on_event`, when given, is called with every event as it arrives, previews included (a
        coroutine function is awaited): progress bars, live previews. Raises what `submit` raises,
        then `TaskFailedError` or `TaskCancelledError`. A `run` that is interrupted leaves its task
        running on the server, as any client that stops listening does.
        """
        task = await self.submit(prompt, **options)
        if on_event is not None:
            async for event in task.events():
                called = on_event(event)
                if inspect.isawaitable(called):
                    await called
        return await task.images()

    def task(self, task_id: str, token: str | None = None) -> Task:
        """A handle on an existing task, e.g. one someone else submitted, given its token.

        No request is made; `events()`, `result()` and the rest use the token.
        """
        return Task(self, task_id, token)

    async def task_by_token(self, token: str) -> Task:
        """The task that has this token (found over the socket, as Wiro's `task_info` does)."""
        try:
            async with self._socket() as ws:
                await ws.send(json.dumps({"type": "task_info", "tasktoken": token}))
                while True:
                    envelope, _ = decode_frame(await asyncio.wait_for(ws.recv(), self._connect_timeout()))
                    if envelope.get("type") == "subscribed" and "seq" not in envelope:
                        return Task(self, str(envelope["id"]), token)
                    if envelope.get("type") == "error" and "seq" not in envelope:
                        raise error_from_socket(envelope)
        except InvalidStatus as exc:
            raise _handshake_error(exc) from None
        except FrameError as exc:
            raise APIError(f"unreadable message from the server: {exc}") from None
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise APIConnectionError(f"cannot reach {self.ws_url}: {exc}") from exc

    async def get(self, task_id: str, token: str | None = None) -> TaskInfo:
        """The task's detail (`GET /v1/tasks/{id}`). Raises `NotFoundError`, `PermissionDeniedError`."""
        response = await self._request("GET", f"/v1/tasks/{task_id}", token=token)
        return TaskInfo.from_dict(response.json())

    async def list(self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None) -> TaskPage:
        """One page of tasks, newest first (`GET /v1/tasks`); `page.next_cursor` leads on."""
        params = {k: v for k, v in {"status": status, "limit": limit, "cursor": cursor}.items() if v is not None}
        data = (await self._request("GET", "/v1/tasks", params=params)).json()
        return TaskPage([TaskInfo.from_dict(t) for t in data.get("data") or []], data.get("next_cursor"))

    async def iter_tasks(self, *, status: str | None = None, page_size: int = 50) -> AsyncIterator[TaskInfo]:
        """Every task, newest first, fetching pages as it goes."""
        cursor = None
        while True:
            page = await self.list(status=status, limit=page_size, cursor=cursor)
            for info in page.data:
                yield info
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def models(self) -> builtins.list[dict[str, Any]]:
        """The models the server serves (`GET /v1/models`)."""
        data = (await self._request("GET", "/v1/models")).json()
        return list(data.get("data") or [])

    # -- transport ---------------------------------------------------------------------------

    def _headers(self, token: str | None = None) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if token:
            headers["X-Task-Token"] = token
        return headers

    def _connect_timeout(self) -> float:
        return self.timeout.connect or DEFAULT_TIMEOUT

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        token: str | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """One API call, retried where that is safe; a non-2xx answer raises its typed error."""
        idempotent = method in ("GET", "HEAD") if idempotent is None else idempotent
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                response = await self._http.request(
                    method, self.base_url + path, json=json, params=params, headers=self._headers(token)
                )
            except httpx.TimeoutException as exc:
                if not (idempotent or isinstance(exc, httpx.ConnectTimeout)) or attempt > self.max_retries:
                    raise APITimeoutError(f"{method} {path}: no answer from {self.base_url} in time") from exc
            except httpx.TransportError as exc:
                # Not connected means not sent: any request may be tried again.
                if not (idempotent or isinstance(exc, httpx.ConnectError)) or attempt > self.max_retries:
                    raise APIConnectionError(f"{method} {path}: cannot reach {self.base_url}: {exc}") from exc
            else:
                if response.is_success:
                    return response
                retryable = response.status_code == 429 or (idempotent and response.status_code in (502, 503, 504))
                if not retryable or attempt > self.max_retries:
                    raise _response_error(response)
                with contextlib.suppress(ValueError):
                    retry_after = float(response.headers.get("retry-after", ""))
            delay = backoff_delay(attempt, *self.reconnect_delay)
            await asyncio.sleep(min(retry_after, 30.0) if retry_after is not None else delay)

    def _socket(self) -> connect:
        """Open a socket to the server (an async context manager giving a `ClientConnection`)."""
        return connect(
            self.ws_url,
            additional_headers=self._headers(),
            user_agent_header=USER_AGENT,
            open_timeout=self._connect_timeout(),
            max_size=MAX_FRAME_BYTES,
        )


class Task:
    """A task on the server: follow its events, wait for its outputs, download them, cancel it.

    Made by `AsyncClient.submit()` (which sets `info`), `AsyncClient.task(id, token)` or
    `AsyncClient.task_by_token(token)`. `token` grants reading (and cancelling) this task only.
    """

    def __init__(self, client: AsyncClient, task_id: str, token: str | None = None, *, info: TaskInfo | None = None):
        self.client = client
        self.id = task_id
        self.token = token
        self.info = info
        self.last_seq = 0  # the newest seq any `events()` of this handle yielded
        self.reconnects = 0  # how often a stream of this handle reconnected
        self._terminal: Event | None = None

    def __repr__(self) -> str:
        return f"Task({self.id!r})"

    async def get(self) -> TaskInfo:
        """The task's current detail (also kept in `info`)."""
        self.info = await self.client.get(self.id, self.token)
        return self.info

    async def events(self, previews: PreviewMode = "binary", since: int = 0) -> AsyncGenerator[Event, None]:
        """Every event after `since`, replayed then live, until the terminal event.

        `previews`: `binary` (image bytes beside the event, the cheapest), `json` (base64 in the
        event; same result for the caller) or `none`. A `ProgressEvent.preview` carries the bytes.
        Reconnects after a dropped socket and resumes where it left off: no event is lost or
        repeated. Raises `NotFoundError` / `PermissionDeniedError` (bad id or token),
        `APIConnectionError` after `max_reconnects` failed attempts in a row.
        """
        if previews not in PREVIEW_MODES:
            raise ValueError(f"previews must be one of {', '.join(PREVIEW_MODES)}, not {previews!r}")
        client = self.client
        cursor = Cursor(last=since)
        failures = 0
        while True:
            opened = time.monotonic()
            progressed = False
            try:
                async with client._socket() as ws, contextlib.aclosing(self._receive(ws, cursor)) as received:
                    await ws.send(json.dumps(self._subscription(cursor.last, previews)))
                    async for event in received:
                        progressed = True
                        self.last_seq = max(self.last_seq, event.seq)
                        if event.terminal:
                            self._terminal = event
                        yield event
                        if event.terminal:
                            return
                reason: BaseException | str = "the server closed the socket"
            except InvalidStatus as exc:
                error = _handshake_error(exc)
                if error.status_code is not None and error.status_code < 500 and error.status_code != 429:
                    raise error from None
                reason = error
            except (ConnectionClosed, OSError, TimeoutError, WebSocketException, Gap) as exc:
                if isinstance(exc, InvalidURI):
                    raise APIConnectionError(f"bad server URL {client.ws_url!r}: {exc}") from exc
                reason = exc
            if progressed or time.monotonic() - opened >= HEALTHY_CONNECTION_SECONDS:
                failures = 0
            failures += 1
            if failures > client.max_reconnects:
                raise APIConnectionError(
                    f"lost the event stream of task {self.id} ({client.ws_url}) and could not reconnect "
                    f"after {client.max_reconnects} attempts: {reason}"
                ) from (reason if isinstance(reason, BaseException) else None)
            self.reconnects += 1
            delay = backoff_delay(failures, *client.reconnect_delay)
            log.info("task %s: socket lost (%s); resuming after seq %d in %.2fs", self.id, reason, cursor.last, delay)
            await asyncio.sleep(delay)

    def _subscription(self, since: int, previews: str) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "subscribe", "id": self.id, "since": since, "previews": previews}
        if self.token:
            message["token"] = self.token
        return message

    async def _receive(self, ws: ClientConnection, cursor: Cursor) -> AsyncGenerator[Event, None]:
        """This task's events on one socket, each let through `cursor` (the next seq, once; `Gap`
        on a hole); control messages handled here."""
        async for frame in ws:
            try:
                envelope, image = decode_frame(frame)
            except FrameError as exc:
                raise APIError(f"unreadable message from the server: {exc}") from None
            if "seq" not in envelope:
                if envelope.get("type") == "error" and envelope.get("id") in (self.id, None):
                    raise error_from_socket(envelope)
                continue  # subscribed / unsubscribed
            if envelope["id"] != self.id:
                continue
            event = event_from_envelope(envelope, image)
            if cursor.admit(event):
                yield event

    async def result(self) -> list[Output]:
        """Wait for the task to end and return its outputs.

        Raises `TaskFailedError` (with the server's code and message) or `TaskCancelledError`.
        """
        if self._terminal is None:
            info = await self.get()
            # since = the newest event but one: the stream then holds the terminal event, or leads to it
            async for _ in self.events(previews="none", since=max(0, info.last_seq - 1)):
                pass
        return self._outcome()

    def _outcome(self) -> list[Output]:
        event = self._terminal
        if isinstance(event, PostprocessEndEvent):
            return list(event.outputs)
        if isinstance(event, CancelEvent):
            raise TaskCancelledError(event.reason, task_id=self.id, event=event)
        if isinstance(event, ErrorEvent):
            raise TaskFailedError(event.detail or "failed", task_id=self.id, code=event.code, event=event)
        raise APIError(f"task {self.id} ended with an unexpected event {event!r}")

    async def cancel(self) -> TaskInfo:
        """Ask the server to cancel the task (`POST .../cancel`, 202).

        A queued task is cancelled at once; a running one stops after its current step. The
        stream then ends with `task_cancel`. Raises `ConflictError` once the task has ended.
        """
        response = await self.client._request("POST", f"/v1/tasks/{self.id}/cancel", token=self.token, idempotent=True)
        self.info = TaskInfo.from_dict(response.json())
        return self.info

    async def deliveries(self) -> list[Delivery]:
        """The task's webhook deliveries, in seq order (`GET .../deliveries`): how each went."""
        response = await self.client._request("GET", f"/v1/tasks/{self.id}/deliveries", token=self.token)
        return [Delivery.from_dict(d) for d in response.json().get("data") or []]

    async def read_output(self, output: Output | str) -> bytes:
        """The bytes of one output (an `Output` or its name)."""
        name = output.name if isinstance(output, Output) else output
        response = await self.client._request("GET", f"/v1/files/{self.id}/{name}", token=self.token)
        return response.content

    async def save_output(self, output: Output | str, path: str | Path) -> Path:
        """Write one output to `path` (through a temporary file, so a partial file never shows)."""
        path = Path(path)
        data = await self.read_output(output)
        partial = path.with_name(f".{path.name}.part")
        partial.write_bytes(data)
        partial.replace(path)
        return path

    async def images(self) -> list[GeneratedImage]:
        """Wait for the outputs and return each with its bytes."""
        return [GeneratedImage(self.id, output, await self.read_output(output)) for output in await self.result()]

    async def download(self, directory: str | Path = ".") -> list[Path]:
        """Wait for the outputs and save each as `directory/{task id}-{name}` (e.g. `...-0.png`)."""
        outputs = await self.result()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return [await self.save_output(o, directory / f"{self.id}-{o.name}") for o in outputs]


def _response_error(response: httpx.Response) -> APIError:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return error_from_response(response.status_code, body, dict(response.headers))


def _handshake_error(exc: InvalidStatus) -> APIError:
    response = exc.response
    try:
        body: Any = json.loads(response.body or b"")
    except ValueError:
        body = (response.body or b"").decode(errors="replace")
    return error_from_response(response.status_code, body, {k.lower(): v for k, v in response.headers.raw_items()})
