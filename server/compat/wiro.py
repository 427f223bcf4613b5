"""Wiro: `POST /v1/Run/{owner}/{project}`, `/v1/Task/Detail`, `/v1/Task/Cancel`, `/v1/Task/Kill`
(provider-docs 004), and its socket: the native one (server/api/websocket.py), also at `/v1`, which
answers Wiro's `{"type": "task_info", "tasktoken"}` with `MESSAGE_HANDLERS` (server.app gives it
to every socket).

Bodies are JSON, multipart/form-data or url-encoded forms. As on Wiro every answer is HTTP 200:
`{"result": true, "errors": [], ...}`, or `{"result": false, "errors": [{"code", "message"}]}`
with Wiro's codes (0 bad request, 1 not found or not allowed now, 96 too many tasks); only a
missing or bad API key is an HTTP 401 (same body), so that it cannot pass for a task's failure.
The tool's parameters follow Wiro's text-to-image tools; see docs/compatibility.md.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from latentcast.client.wire import WIRO_SCHEDULERS, WiroScheduler
from latentcast.server.api import websocket
from latentcast.server.api.access import require_key
from latentcast.server.api.context import context
from latentcast.server.api.errors import parse_json
from latentcast.server.api.forms import FormError, is_multipart, read_form
from latentcast.server.compat.common import Refusal, as_data_url, endpoint, invalid, parse, start
from latentcast.server.compat.wiro_detail import detail_body
from latentcast.server.errors import APIError
from latentcast.server.protocol.client_messages import Refused, text_field
from latentcast.server.protocol.events import TaskStatus
from latentcast.server.tasks.record import TaskRecord
from latentcast.server.tasks.service import TaskFinished, TaskNotFound

NAMES = {
    "negative_prompt": "negativePrompt",
    "num_images": "samples",
    "num_inference_steps": "steps",
    "guidance_scale": "scale",
    "webhook": "callbackUrl",
    "image": "inputImage",
}
_CODES = {"not_found": 1, "model": 1, "conflict": 1, "queue_full": 96}


class RunRequest(BaseModel):
    """The tool's inputs (lax types: a form sends every value as text)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    prompt: str
    negativePrompt: str = Field(default="", validation_alias=AliasChoices("negativePrompt", "negative_prompt"))
    samples: int = Field(default=1, ge=1, le=4)
    steps: int = Field(default=28, ge=1, le=100)
    scale: float = Field(default=7.0, ge=0, le=30)
    seed: int | None = None  # Wiro's seed is text; empty means random
    width: int = Field(default=1024, ge=64, le=2048, multiple_of=8)
    height: int = Field(default=1024, ge=64, le=2048, multiple_of=8)
    scheduler: WiroScheduler = "FlowMatchEulerDiscreteScheduler"
    callbackUrl: str = ""
    projectid: str = ""  # Wiro's billing project: there is one project here
    # image-to-image: the picture as a multipart file, or base64 / a data URL (never a URL)
    inputImage: str = ""
    strength: float | None = Field(default=None, ge=0, le=1)

    @field_validator("seed", mode="before")
    @classmethod
    def _blank_is_random(cls, seed: Any) -> Any:
        return None if isinstance(seed, str) and not seed.strip() else seed


def _render(refusal: Refusal) -> Response:
    code = _CODES.get(refusal.kind, 0)
    if refusal.fields:
        errors = [{"code": code, "message": _wiro_words(f)} for f in refusal.fields]
    else:
        errors = [{"code": code, "message": refusal.message}]
    status = 401 if refusal.kind == "unauthorized" else 200
    return JSONResponse({"result": False, "errors": errors}, status_code=status, headers=refusal.headers)


def _wiro_words(field: dict[str, str]) -> str:
    name = field["field"]
    if field["rule"] == "missing":
        return f"Request parameter [{name}] required"
    if field["rule"] == "unknown_field":
        return f"Request parameter [{name}] is not an input of this tool"
    return f"Request parameter [{name}] is invalid: {field['message'].removeprefix(name + ': ')}"


async def _fields(request: Request) -> dict[str, Any]:
    """The request's parameters (files left out: a task's reads take none)."""
    return (await _inputs(request))[0]


async def _inputs(request: Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The request's parameters and files, from JSON, multipart/form-data or a url-encoded form."""
    raw = await request.body()
    kind = request.headers.get("content-type", "")
    if is_multipart(kind):
        try:
            form = read_form(kind, raw)
        except FormError as exc:
            if exc.field == "body":
                raise Refusal("body", "Request parameters are invalid.") from None
            raise invalid(exc.field, exc.rule, str(exc)) from None
        return form.fields, form.files
    if kind.startswith("application/x-www-form-urlencoded"):
        return dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)), {}
    try:
        body = parse_json(raw)
    except APIError:
        body = None  # Wiro says no more than this about a body that is not parameters
    if not isinstance(body, dict):
        raise Refusal("body", "Request parameters are invalid.")
    return body, {}


@endpoint(_render)
async def run(request: Request) -> Response:
    ctx = context(request)
    model = f"{request.path_params['owner']}/{request.path_params['project']}"
    if not await ctx.service.catalog.serves_now(model):
        raise Refusal("model", f"slug-owner-project-not-exist: {model} is not served here")
    fields, files = await _inputs(request)
    if unknown := sorted(set(files) - {"inputImage"}):
        raise invalid(unknown[0], "file", f"{unknown[0]}: this tool takes no file but inputImage")
    body = parse(RunRequest, fields, strict=False)
    params = {
        "prompt": body.prompt,
        "negative_prompt": body.negativePrompt,
        "model": model,
        "num_images": body.samples,
        "num_inference_steps": body.steps,
        "guidance_scale": body.scale,
        "seed": body.seed,
        "width": body.width,
        "height": body.height,
        "scheduler": WIRO_SCHEDULERS[body.scheduler],
    }
    if callback := body.callbackUrl.strip():  # its final Task/Detail, when the task ends
        params["webhook"] = callback
    pictures = {"image": files["inputImage"]} if "inputImage" in files else {}
    if body.inputImage:
        params["image"] = as_data_url(body.inputImage)
    if pictures or body.inputImage:
        params["strength"] = body.strength
        if not {"width", "height"} & body.model_fields_set:
            del params["width"], params["height"]  # the image's own size
    elif body.strength is not None:
        params["strength"] = body.strength  # refused: it needs an image
    record = await start(request, params, NAMES, webhook_format="wiro", files=pictures)
    return JSONResponse({"errors": [], "taskid": record.id, "socketaccesstoken": record.token, "result": True})


async def _task(request: Request, *, change: bool = False) -> TaskRecord:
    """The task named by `tasktoken` (or `taskid`): the token alone reads it; a task id, or
    changing it (`change`), takes the key that created it (another key's task is not found)."""
    fields = await _fields(request)
    service = context(request).service
    token, task_id = fields.get("tasktoken"), fields.get("taskid")
    by_token = isinstance(token, str) and bool(token)
    if not by_token and not (isinstance(task_id, str | int) and str(task_id)):
        raise Refusal("body", "taskid or tasktoken is required")
    caller = await require_key(request) if change or not by_token else None
    try:
        record = await service.get_by_token(str(token)) if by_token else await service.get(str(task_id))
    except TaskNotFound:
        raise Refusal("not_found", "There is no task yet.") from None
    if caller is not None and not caller.sees(record):
        raise Refusal("not_found", "There is no task yet.")
    return record


@endpoint(_render, key=False)
async def task_detail(request: Request) -> Response:
    return JSONResponse(await detail_body(context(request).service, await _task(request)))


@endpoint(_render)
async def task_cancel(request: Request) -> Response:
    """Cancel a task that is still queued (Kill stops a running one)."""
    record = await _task(request, change=True)
    if record.status is not TaskStatus.QUEUED:
        raise Refusal("conflict", "Task is not in a cancellable state.")
    await _stop(request, record, "cancelled by request", "Task is not in a cancellable state.")
    return JSONResponse({"result": True, "errors": []})


@endpoint(_render)
async def task_kill(request: Request) -> Response:
    """Stop a task that a worker has taken; it ends with task_cancel at its next step."""
    record = await _task(request, change=True)
    if record.status is TaskStatus.QUEUED:
        raise Refusal("conflict", "Task could not be killed: it is still queued; use /Task/Cancel")
    why = f"Task could not be killed: it already ended ({record.status})"
    if record.status.is_final:
        raise Refusal("conflict", why)
    await _stop(request, record, "killed by request", why)
    return JSONResponse({"result": True, "errors": []})


async def _stop(request: Request, record: TaskRecord, reason: str, too_late: str) -> None:
    try:
        await context(request).service.cancel(record.id, reason)
    except TaskFinished:
        raise Refusal("conflict", too_late) from None


async def task_info(connection: websocket.Connection, message: dict[str, Any]) -> None:
    """Wiro's subscribe: by the task's token alone, every event from the first, as JSON without previews."""
    token = text_field(message, "tasktoken")
    try:
        record = await connection.ctx.service.get_by_token(token)
    except TaskNotFound:
        raise Refused("not_found", "no task has this tasktoken") from None
    connection.follow(record.id, 0, "none")


# Wiro's client messages on the socket, by type.
MESSAGE_HANDLERS: Mapping[str, websocket.MessageHandler] = {"task_info": task_info}


def routes(socket: websocket.SocketEndpoint) -> list[BaseRoute]:
    """Wiro's routes; `socket` (server.api.websocket.endpoint) is served at `/v1`, where Wiro's clients connect."""
    return [
        Route("/v1/Run/{owner}/{project}", run, methods=["POST"]),
        Route("/v1/Task/Detail", task_detail, methods=["POST"]),
        Route("/v1/Task/Cancel", task_cancel, methods=["POST"]),
        Route("/v1/Task/Kill", task_kill, methods=["POST"]),
        WebSocketRoute("/v1", socket),
    ]
