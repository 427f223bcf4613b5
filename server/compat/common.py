"""What every compatibility endpoint shares: validating a provider's body, turning it into a native
task, waiting for that task, and refusing in words each provider then renders its own way.

A provider module (aimlapi, wiro, segmind, texttoimage) only knows its own request and response.
Everything it queues goes through the native submission path (server.api.submission), so every
compat task has the same events, limits and place in the task list as a native one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from latentcast.server.api.access import require_key
from latentcast.server.api.context import context
from latentcast.server.api.errors import field_error, parse_json, pydantic_fields
from latentcast.server.api.forms import FormError, read_form
from latentcast.server.api.submission import submit
from latentcast.server.errors import RequestRefused
from latentcast.server.protocol.events import TaskStatus
from latentcast.server.tasks.record import TaskRecord
from latentcast.server.tasks.service import TaskFinished, TaskService
from latentcast.server.tasks.webhook import Format

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger("latentcast.compat")


@dataclasses.dataclass
class Refusal(Exception):
    """A request refused, or a task that did not complete, before any provider's wording.

    kind: "unauthorized" (no valid API key), "body" (not a JSON object), "validation", "model" (not
    served), "not_found", "conflict" (not possible in the task's state), "queue_full", "failed",
    "cancelled", "timeout", "gone" (the client hung up: nobody reads the answer).
    """

    kind: str
    message: str
    fields: list[dict[str, str]] = dataclasses.field(default_factory=list)
    headers: Mapping[str, str] | None = None

    def __str__(self) -> str:
        return self.message


# The HTTP status of each kind of refusal, for providers that answer with the status (Wiro does not).
HTTP_STATUS = {
    "unauthorized": 401,
    "body": 400,
    "validation": 400,
    "model": 400,
    "not_found": 404,
    "conflict": 409,
    "queue_full": 429,
    "failed": 500,
    "cancelled": 500,
    "timeout": 504,
    "gone": 499,  # what proxies log for a request its client closed; no client reads it
}


def invalid(field: str, rule: str, message: str) -> Refusal:
    return Refusal("validation", message, [field_error(field, rule, message)])


def endpoint(
    render: Callable[[Refusal], Response], *, key: bool = True
) -> Callable[..., Callable[[Request], Awaitable[Response]]]:
    """Decorate a provider's handler so that a `Refusal`, or a missing or bad API key, comes out in
    that provider's shape. The key is checked first, unless `key` is False: a handler that a task's
    token alone may use checks it itself (`require_key`) when no token is given."""

    def wrap(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            try:
                if key:
                    await require_key(request)
                return await handler(request)
            except Refusal as refusal:
                return render(refusal)
            except RequestRefused as exc:
                if exc.status != 401:
                    raise
                return render(Refusal("unauthorized", exc.message, headers=exc.headers))

        return run

    return wrap


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or a "body" refusal ("validation" for a key given twice)."""
    try:
        body = parse_json(await request.body())
    except RequestRefused as exc:
        raise Refusal("validation" if exc.fields else "body", exc.message, exc.fields or []) from None
    if not isinstance(body, dict):
        raise Refusal("body", "the request body must be a JSON object")
    return body


def as_data_url(image: str) -> str:
    """A provider's picture field: a data URL as is, bare base64 as one (its type is read from its bytes)."""
    return image if image.startswith("data:") or image.startswith(("http://", "https://")) else f"data:image/png;base64,{image}"


async def form_body(request: Request) -> tuple[dict[str, str], dict[str, bytes]]:
    """A multipart/form-data body's text fields and files, or a "body" refusal."""
    try:
        form = read_form(request.headers.get("content-type", ""), await request.body())
    except FormError as exc:
        raise Refusal("body" if exc.field == "body" else "validation", str(exc),
                      [] if exc.field == "body" else [field_error(exc.field, exc.rule, str(exc))]) from None
    return form.fields, form.files


def parse(model: type[M], body: Any, *, strict: bool = True, prefix: str = "") -> M:
    """`body` as the provider's request model, or a "validation" refusal naming every bad field
    (as `prefix.field` when the body is a nested object)."""
    try:
        return model.model_validate(body, strict=strict)
    except ValidationError as exc:
        fields = pydantic_fields(exc)
        if prefix:
            fields = [field_error(f"{prefix}.{f['field']}", f["rule"], f"{prefix}.{f['message']}") for f in fields]
        raise Refusal("validation", "; ".join(f["message"] for f in fields), fields) from None


async def start(
    request: Request, params: dict[str, Any], names: Mapping[str, str], *, webhook_format: Format = "native",
    files: Mapping[str, bytes] | None = None,
) -> TaskRecord:
    """Validate `params` (native fields) against the server's rules and queue the task; a provider's
    callback URL is its `webhook`, sent in the provider's body shape (`webhook_format`); `files`
    are its input pictures sent as files ("image", "mask").

    A native refusal is re-worded with the provider's field names (`names`: native -> provider).
    """
    try:
        return await submit(request, params, webhook_format=webhook_format, files=files)
    except RequestRefused as exc:
        raise _reworded(exc, names) from None


def _reworded(exc: RequestRefused, names: Mapping[str, str]) -> Refusal:
    if exc.status == 429:  # the queue is full, or the caller has its most tasks in flight
        return Refusal("queue_full", exc.message, headers=exc.headers)
    fields = []
    for f in exc.fields or []:
        name = names.get(f["field"], f["field"])
        fields.append(field_error(name, f["rule"], f["message"].replace(f["field"], name, 1)))
    kind = "model" if any(f["rule"] == "served_model" for f in fields) else "validation"
    return Refusal(kind, "; ".join(f["message"] for f in fields) or exc.message, fields)


async def wait_ended(
    service: TaskService, task_id: str, *, timeout: float | None = None, unless: Awaitable[Any] | None = None
) -> str:
    """Wait for the task's terminal event: "ended", or "timeout", or "unless" when that finished first."""
    ended = asyncio.Event()
    unsubscribe = service.subscribe(task_id, lambda event: ended.set() if event.terminal else None)
    waiting = [asyncio.ensure_future(ended.wait())]
    if unless is not None:
        waiting.append(asyncio.ensure_future(unless))
    try:
        if (await service.get(task_id)).status.is_final:
            return "ended"
        done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return "ended" if waiting[0] in done else "unless" if done else "timeout"
    finally:
        unsubscribe()
        for future in waiting:
            future.cancel()


async def finish(request: Request, record: TaskRecord) -> TaskRecord:
    """Wait for the task to end and return it completed; otherwise refuse ("failed", "cancelled",
    "timeout", "gone").

    A wait that runs out (`--compat-wait`) cancels the task, and the answer says so. A client that
    hangs up does not: none of the providers documents cancelling on a disconnect, and the task is
    an ordinary one that others may be following (its page, the dashboard, a socket), so it runs
    to its end and its files stay at their URLs."""
    ctx = context(request)
    service, limit = ctx.service, ctx.settings.compat_wait
    outcome = await wait_ended(service, record.id, timeout=limit, unless=_hang_up(request))
    if outcome == "unless":
        log.info("task %s: its client hung up before the end; the task goes on", record.id)
        raise Refusal("gone", f"the client hung up; task {record.id} goes on")
    if outcome == "timeout":
        await cancel_late(service, record.id, limit)
    return completed(await service.get(record.id), late_after=limit if outcome == "timeout" else None)


async def cancel_late(service: TaskService, task_id: str, limit: float) -> None:
    """Cancel a task that was not done after `limit` seconds (`--compat-wait`), unless it just ended."""
    with contextlib.suppress(TaskFinished):
        await service.cancel(task_id, f"not done after {limit:g} s")


def completed(record: TaskRecord, *, late_after: float | None = None) -> TaskRecord:
    """The ended task if it completed; otherwise the refusal that says why ("timeout" when it was
    cancelled for not being done after `late_after` seconds, "cancelled", "failed")."""
    if record.status is TaskStatus.COMPLETED:
        return record  # (it may have finished just as the wait ran out)
    if late_after is not None:
        raise Refusal("timeout", f"task {record.id} was not done after {late_after:g} s; it has been cancelled")
    if record.status is TaskStatus.CANCELLED:
        raise Refusal("cancelled", f"task {record.id} was cancelled")
    error = record.error or {}
    raise Refusal("failed", f"task {record.id} failed: {error.get('message') or 'unknown error'}")


async def _hang_up(request: Request) -> None:
    """Returns when the client disconnects (the body has been read, so nothing else arrives)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def output_bytes(request: Request, record: TaskRecord) -> list[bytes]:
    """The task's images, in order, as stored."""
    files = context(request).files
    contents = [await files.read(record.id, output["name"]) for output in record.outputs]
    if any(data is None for data in contents):
        raise Refusal("failed", f"task {record.id} lost an output file")
    return [data for data in contents if data is not None]


def random_seed(low: int, high: int) -> int:
    """A seed the provider would accept back (some refuse 0, which stands for "random" there)."""
    return low + secrets.randbelow(high - low + 1)


def inference_seconds(record: TaskRecord) -> float:
    """Denoising and decoding time, from the task's task_start and task_end events."""
    return max(0.0, record.times.get("task_end", 0.0) - record.times.get("task_start", 0.0))
