"""What each native route takes and answers, for the OpenAPI document (server.api.openapi).

The handlers build their answers as plain dicts; the models here are those answers' shapes, for
the document only. tests/core/test_openapi.py checks real answers of the running server against
them, so an answer and its model cannot drift apart unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from latentcast.server.api import deliveries, files, inputs, meta, metrics, sse, tasks
from latentcast.server.api.openapi import KEY, KEY_OR_TOKEN, Operation, Param, Reply
from latentcast.server.protocol.events import EventType, TaskStatus
from latentcast.server.tasks.params import TaskParams, TaskRequest


class Answer(BaseModel):
    """The shape of an answer: these fields and no others, so that checking real answers against it
    also catches a field added to an answer and not to its model."""

    model_config = ConfigDict(extra="forbid")


class FieldError(Answer):
    field: str = Field(description="the field at fault, dotted when nested (`image_size.width`)")
    rule: str = Field(
        description="the rule it breaks: pydantic's error type (`greater_than_equal`, `multiple_of`, "
        "`unknown_field`, `missing`, ...) or the server's (`served_model`, `max_pixels`, ...)"
    )
    message: str


class ErrorDetail(Answer):
    type: str = Field(
        description="`validation_error`, `invalid_json`, `unauthorized`, `forbidden`, `not_found`, "
        "`task_finished`, `queue_full`, `rate_limited`, ..."
    )
    message: str
    fields: list[FieldError] = Field(default_factory=list, description="every field at fault; absent when none is")


class ErrorBody(Answer):
    """Every refusal of the native API: the same shape whatever the status."""

    error: ErrorDetail


class Event(Answer):
    """One event of a task: a text frame on `/v1/ws`, the `data` of an event on the SSE stream."""

    type: EventType
    id: str = Field(description="the task id")
    seq: int = Field(ge=1, description="1, 2, 3, ... per task, without gaps")
    time: float = Field(description="Unix seconds when it happened, in the worker")
    message: Any = Field(description="depends on the type (docs/protocol.md)")


class TaskOutput(Answer):
    name: str
    contenttype: str = Field(description="`image/png`, `image/jpeg` or `image/webp`")
    size: int = Field(description="bytes")
    url: str
    width: int
    height: int
    seed: int


class TaskFailure(Answer):
    code: str | None
    message: str | None


class TaskUrls(Answer):
    self: str
    cancel: str
    events: str = Field(description="the task's Server-Sent Events")
    deliveries: str = Field(description="the task's webhook deliveries")
    socket: str = Field(description="the WebSocket that streams every task")
    page: str = Field(description="the browser page that follows (or replays) the task; carries its token")


class TaskInput(Answer):
    image: str = Field(description="URL of the picture the run starts from (PNG at the task's size); the task's token opens it")
    mask: str | None = Field(description="URL of its mask (white is repainted), for inpainting")
    strength: float = Field(description="how much of the schedule runs")


class Upload(Answer):
    id: str = Field(description="what a task's `image` or `mask` names it by, for an hour")
    bytes: int
    width: int
    height: int
    content_type: str = Field(description="the picture's type, read from its bytes")


class UploadForm(BaseModel):
    """`multipart/form-data`: one picture, the file `file`."""

    model_config = ConfigDict(extra="forbid")

    file: bytes = Field(description="any format Pillow reads; at most 4096 x 4096 pixels declared")


class TaskDetail(Answer):
    id: str
    status: TaskStatus
    model: str = Field(description="the served model's own name")
    seed: int = Field(description="the seed used, also when it was random")
    params: TaskParams = Field(
        description="the task's parameters, with every default filled in (its webhook is not one)"
    )
    created_at: float = Field(description="Unix seconds")
    times: dict[str, float] = Field(description="Unix seconds of each lifecycle event that happened, by type")
    attempt: int = Field(description="how many times a worker took it (more after a restart)")
    worker: str | None
    last_seq: int = Field(description="the seq of its latest event")
    outputs: list[TaskOutput] = Field(description="the images, once completed")
    error: TaskFailure | None = Field(description="why it failed")
    position: int | None = Field(description="1-based place in the queue while queued")
    urls: TaskUrls
    input: TaskInput | None = Field(description="what an image task starts from; null for text-to-image")


class CreatedTask(TaskDetail):
    token: str = Field(description="opens this task alone: its detail, events, files and page")


class TaskPage(Answer):
    data: list[TaskDetail] = Field(description="newest first")
    next_cursor: str | None = Field(description="`cursor` for the next page; null on the last")


class Delivery(Answer):
    """One webhook delivery: one event of one task, to the task's webhook (docs/webhooks.md)."""

    id: str = Field(description="the `webhook-id` header of every attempt of it")
    task_id: str
    seq: int = Field(description="the seq of the event it delivers")
    event: EventType
    state: Literal["pending", "delivered", "failed"] = Field(description="failed: given up")
    attempts: int
    last_status_code: int | None = Field(description="the receiver's HTTP status at the last attempt")
    last_error: str | None = Field(description="what went wrong at the last attempt (no answer, a redirect, ...)")
    next_attempt_at: float | None = Field(
        description="Unix seconds when it is tried next, while pending (null while an earlier delivery of its "
        "task waits)"
    )
    delivered_at: float | None
    failed_at: float | None = Field(description="when it was given up")
    created_at: float = Field(description="the time of its event")


class DeliveryList(Answer):
    data: list[Delivery]


class ServedModel(Answer):
    id: str
    object: Literal["model"]
    aliases: list[str] = Field(description="other names that reach it (the providers' model names)")
    description: str | None = Field(default=None, description="a builtin model's: what it draws, in one sentence")


class ModelList(Answer):
    object: Literal["list"]
    data: list[ServedModel]


class Worker(Answer):
    name: str
    device: str
    model: str
    aliases: list[str]
    task: str | None = Field(description="the task it is running")
    ready: bool
    live: bool = Field(description="it beat within the last three heartbeats (a stopped process has not)")
    started_at: float
    pid: int
    host: str
    beat_at: float = Field(description="Unix seconds of its latest heartbeat")


class WorkerList(Answer):
    data: list[Worker]


class Health(Answer):
    status: Literal["ok"]


class WorkerReadiness(Answer):
    name: str
    ready: bool
    live: bool = Field(description="it beat within the last three heartbeats")
    task: str | None


class Readiness(Answer):
    ready: bool
    workers: list[WorkerReadiness] = Field(description="this process's own workers")
    store: Literal["reachable", "busy", "unreachable"] = Field(
        description="whether the backend (Redis) answers; busy: no connection to it came free within the pool's timeout"
    )
    live_workers: int = Field(description="ready workers with a live heartbeat, wherever they run")


def refused(description: str, **headers: str) -> Reply:
    return Reply(description, ErrorBody, headers=headers)


UNAUTHORIZED = refused("No valid API key (a server with keys).", **{"WWW-Authenticate": "Bearer"})
NOT_FOUND = refused("No such task, or another key's task.")
FORBIDDEN = refused("The token is not this task's.")
INVALID = refused("A field breaks a rule: each is named in `fields` with its rule.")
TASK_ID = Param("task_id", "path", "the task's id")
_TASKS, _EVENTS, _WEBHOOKS, _FILES, _SERVICE = "Tasks", "Events", "Webhooks", "Files", "Models, workers, health"


def _bytes(media_type: str) -> dict[str, str]:
    """A body of raw bytes: OpenAPI 3.1 says so with `contentMediaType`; `format: binary`, 3.0's
    word for it, is what code generators still read to hand the bytes over as a file."""
    return {"type": "string", "format": "binary", "contentMediaType": media_type}


operations: dict[Callable[..., Any], Operation] = {
    tasks.create_task: Operation(
        summary="Create a task",
        tag=_TASKS,
        description="Queue a text-to-image task; follow it with `urls.events`, `urls.socket` or `urls.page`, or "
        "have its events POSTed to `webhook`.",
        body=TaskRequest,
        examples={
            "A prompt, with every other field the server's default (1024x1024, 28 steps, PNG)": {
                "prompt": "a lighthouse at dusk",
            },
            "Small and quick, with a fixed seed and fewer previews": {
                "prompt": "a lighthouse at dusk",
                "negative_prompt": "fog",
                "width": 512,
                "height": 384,
                "num_inference_steps": 20,
                "guidance_scale": 5,
                "seed": 42,
                "output_format": "jpeg",
                "preview_every": 2,
            },
            "Told by a webhook when it ends": {
                "prompt": "a lighthouse at dusk",
                "webhook": "https://example.com/hooks/latentcast",
            },
        },
        replies={
            201: Reply("Queued.", CreatedTask, headers={"Location": "the task's address"}),
            400: refused("Not JSON, or a model not served here (rule `served_model`; the message lists those served)."),
            401: UNAUTHORIZED,
            422: INVALID,
            429: refused("The queue is full (`queue_full`).", **{"Retry-After": "seconds"}),
        },
        security=KEY,
    ),
    tasks.list_tasks: Operation(
        summary="List tasks",
        tag=_TASKS,
        params=(
            Param("status", "query", "only tasks in this status", {"enum": [s.value for s in TaskStatus]}),
            Param(
                "limit", "query", "at most this many", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
            ),
            Param("cursor", "query", "`next_cursor` of the previous page"),
        ),
        replies={200: Reply("A page of tasks.", TaskPage), 401: UNAUTHORIZED, 422: INVALID},
        security=KEY,
    ),
    tasks.get_task: Operation(
        summary="Read a task",
        tag=_TASKS,
        params=(TASK_ID,),
        replies={200: Reply("The task.", TaskDetail), 401: UNAUTHORIZED, 403: FORBIDDEN, 404: NOT_FOUND},
        security=KEY_OR_TOKEN,
    ),
    tasks.cancel_task: Operation(
        summary="Cancel a task",
        tag=_TASKS,
        description="A queued task ends at once, a running one at its next step (`task_cancel`, no outputs).",
        params=(TASK_ID,),
        replies={
            202: Reply("Cancelling: the task as it is now.", TaskDetail),
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            404: NOT_FOUND,
            409: refused("The task already ended (`task_finished`)."),
        },
        security=KEY,
    ),
    tasks.delete_task: Operation(
        summary="Delete an ended task",
        tag=_TASKS,
        description=(
            "Removes a completed, failed or cancelled task with its events and output files: its id and "
            "token open nothing afterwards. Ended tasks are also removed `--retention` seconds after they "
            "were created (7 days by default)."
        ),
        params=(TASK_ID,),
        replies={
            204: Reply("Deleted."),
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            404: NOT_FOUND,
            409: refused("The task is queued or running (`task_not_finished`): cancel it first."),
        },
        security=KEY,
    ),
    sse.task_events: Operation(
        summary="A task's events as Server-Sent Events",
        tag=_EVENTS,
        description=(
            "Every event of the task from the start (or after `since` / `Last-Event-ID`), then the live ones; "
            "the stream ends after the terminal event. Each SSE event is named after its type (`event: "
            "task_progress`), its `id` is the seq and its `data` an `Event`; the first also carries `retry: 1000`. "
            "Named events reach a browser's `EventSource.addEventListener(type, ...)`, never `onmessage`. "
            "Comment lines (`: keepalive`) keep an idle stream open. Contract: docs/protocol.md."
        ),
        params=(
            TASK_ID,
            Param("since", "query", "resume after this seq", {"type": "integer", "minimum": 0, "default": 0}),
            Param("Last-Event-ID", "header", "resume after this seq (what EventSource sends when it reconnects)"),
            Param("previews", "query", "base64 previews, or none", {"enum": list(sse.PREVIEWS)}),
        ),
        replies={
            200: Reply(
                "The stream: `id: SEQ`, `event: TYPE`, `data: EVENT` blocks.",
                media_type="text/event-stream",
                schema={"type": "string"},
                event_data=Event,
            ),
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            404: NOT_FOUND,
            422: INVALID,
        },
        security=KEY_OR_TOKEN,
    ),
    deliveries.task_deliveries: Operation(
        summary="A task's webhook deliveries",
        tag=_WEBHOOKS,
        description="Each event delivered (or being delivered) to the task's webhook, in seq order.",
        params=(TASK_ID,),
        replies={200: Reply("The deliveries.", DeliveryList), 401: UNAUTHORIZED, 403: FORBIDDEN, 404: NOT_FOUND},
        security=KEY_OR_TOKEN,
    ),
    deliveries.recent_deliveries: Operation(
        summary="The newest webhook deliveries",
        tag=_WEBHOOKS,
        description="Every task's (a key that is not an admin: its own tasks'), newest first.",
        params=(
            Param(
                "limit", "query", "at most this many",
                {"type": "integer", "minimum": 1, "maximum": deliveries.MAX_LIMIT, "default": 50},
            ),
        ),
        replies={200: Reply("The deliveries.", DeliveryList), 401: UNAUTHORIZED, 422: INVALID},
        security=KEY,
    ),
    files.get_file: Operation(
        summary="An output image",
        tag=_FILES,
        params=(TASK_ID, Param("name", "path", "`name` of one of the task's outputs")),
        replies={
            200: Reply(
                "The image's bytes, as its output's `contenttype` says; `application/octet-stream` when the "
                "request's `Accept` prefers it (what generated clients read as a file).",
                media_type="image/png",
                schema=_bytes("image/png"),
                alternatives={media: _bytes(media) for media in ("image/jpeg", "image/webp", files.OCTET_STREAM)},
            ),
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            404: refused("No such task or file."),
        },
        security=KEY_OR_TOKEN,
    ),
    inputs.create_upload: Operation(
        summary="Upload a picture",
        tag=_FILES,
        description="Keep a picture for tasks to start from: a task names it by the `id` answered, in `image` or "
        "`mask`, and keeps its own copy. An upload no task names goes after an hour.",
        body=UploadForm,
        body_media_types=("multipart/form-data",),
        examples={"One PNG": {"file": "<the picture's bytes>"}},
        replies={
            201: Reply("Kept.", Upload),
            400: refused("No file `file`, or not a picture (`not_an_image`), or one declaring too many pixels "
                         "(`max_pixels`)."),
            401: UNAUTHORIZED,
        },
        security=KEY,
    ),
    inputs.get_input: Operation(
        summary="An image task's input picture",
        tag=_FILES,
        params=(TASK_ID, Param("name", "path", "`image` or `mask`")),
        replies={
            200: Reply(
                "The picture the run starts from, as PNG at the task's size.",
                media_type="image/png",
                schema=_bytes("image/png"),
                alternatives={files.OCTET_STREAM: _bytes(files.OCTET_STREAM)},
            ),
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            404: refused("No such task, or it has no such input."),
        },
        security=KEY_OR_TOKEN,
    ),
    meta.list_models: Operation(
        summary="Served models", tag=_SERVICE, replies={200: Reply("The models this deployment serves.", ModelList)}
    ),
    meta.list_workers: Operation(
        summary="Live workers",
        tag=_SERVICE,
        replies={200: Reply("Every live worker's latest heartbeat.", WorkerList), 401: UNAUTHORIZED},
        security=KEY,
    ),
    meta.healthz: Operation(summary="Liveness", tag=_SERVICE, replies={200: Reply("The process answers.", Health)}),
    meta.readyz: Operation(
        summary="Readiness",
        tag=_SERVICE,
        replies={
            200: Reply("Every worker is ready, the backend answers, and a worker is alive.", Readiness),
            503: Reply("A worker is not ready yet, the backend is unreachable or busy, or no worker is alive.", Readiness),
        },
    ),
    metrics.metrics: Operation(
        summary="Prometheus metrics",
        tag=_SERVICE,
        replies={
            200: Reply(
                "Prometheus' text format (docs/observability.md).", media_type="text/plain", schema={"type": "string"}
            )
        },
    ),
}

