"""The native task API: create, read, list and cancel tasks."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from server.api.access import check_token, given_token
from server.api.context import context
from server.api.errors import APIError, field_error, invalid, json_object, pydantic_fields
from server.protocol.events import TaskStatus
from server.tasks.catalog import UnknownModel
from server.tasks.params import TaskParams, check_limits
from server.tasks.record import TaskRecord
from server.tasks.service import TaskFinished, TaskNotFound, TaskService


def validate_params(request: Request, body: dict[str, Any]) -> TaskParams:
    """The body as `TaskParams` within this server's limits and models, or the 4xx that says why."""
    ctx = context(request)
    try:
        params = TaskParams.model_validate(body)
    except ValidationError as exc:
        raise invalid(pydantic_fields(exc)) from None
    problems = check_limits(params, ctx.settings.limits)
    if params.preview_method == "taesd" and ctx.settings.taesd is None:
        problems.append(("preview_method", "taesd_weights", "preview_method taesd needs a server started with --taesd"))
    if problems:
        raise invalid([field_error(*p) for p in problems])
    try:
        ctx.service.catalog.resolve(params.model)
    except UnknownModel as exc:
        raise invalid([field_error("model", "served_model", str(exc))], status=400) from None
    return params


async def submit(request: Request, params: TaskParams, **kwargs: Any) -> TaskRecord:
    """Queue a validated task, refusing with 429 when the queue is full."""
    ctx = context(request)
    if await ctx.service.queue.length() >= ctx.settings.max_queue:
        raise APIError(
            429, "queue_full", f"the queue holds {ctx.settings.max_queue} tasks; try again later",
            headers={"Retry-After": "5"},
        )
    return await ctx.service.submit(params, **kwargs)


def urls(request: Request, record: TaskRecord) -> dict[str, str]:
    base = str(request.base_url).rstrip("/")
    socket = "ws" + base[4:] if base.startswith("http") else base
    return {
        "self": f"{base}/v1/tasks/{record.id}",
        "cancel": f"{base}/v1/tasks/{record.id}/cancel",
        "events": f"{base}/v1/tasks/{record.id}/events",
        "socket": f"{socket}/v1/ws",
        "page": f"{base}/t/{record.id}?token={record.token}",
    }


async def describe(request: Request, service: TaskService, record: TaskRecord) -> dict[str, Any]:
    detail = record.public()
    detail["position"] = await service.position(record.id) if record.status is TaskStatus.QUEUED else None
    detail["urls"] = urls(request, record)
    return detail


async def find(request: Request) -> TaskRecord:
    """The task named in the path, readable with the token given (or 404/403)."""
    try:
        record = await context(request).service.get(request.path_params["task_id"])
    except TaskNotFound:
        raise APIError(404, "not_found", f"no task {request.path_params['task_id']!r}") from None
    check_token(record, given_token(request))
    return record


async def create_task(request: Request) -> JSONResponse:
    params = validate_params(request, await json_object(request))
    record = await submit(request, params)
    body = await describe(request, context(request).service, record)
    body["token"] = record.token
    return JSONResponse(body, status_code=201, headers={"Location": body["urls"]["self"]})


async def get_task(request: Request) -> JSONResponse:
    record = await find(request)
    return JSONResponse(await describe(request, context(request).service, record))


async def list_tasks(request: Request) -> JSONResponse:
    query = request.query_params
    problems = []
    status = None
    if "status" in query:
        try:
            status = TaskStatus(query["status"])
        except ValueError:
            allowed = ", ".join(s.value for s in TaskStatus)
            problems.append(field_error("status", "enum", f"status must be one of: {allowed}"))
    limit = 50
    if "limit" in query:
        raw = query["limit"]
        if not raw.isdigit() or not 1 <= int(raw) <= 200:
            problems.append(field_error("limit", "range", "limit must be an integer from 1 to 200"))
        else:
            limit = int(raw)
    if problems:
        raise invalid(problems)
    service = context(request).service
    try:
        page = await service.list(status=status, limit=limit, cursor=query.get("cursor"))
    except ValueError as exc:
        raise invalid([field_error("cursor", "cursor", f"cursor: {exc}")]) from None
    return JSONResponse(
        {"data": [await describe(request, service, r) for r in page.items], "next_cursor": page.next_cursor}
    )


async def cancel_task(request: Request) -> JSONResponse:
    record = await find(request)
    service = context(request).service
    try:
        record = await service.cancel(record.id)
    except TaskFinished as exc:
        raise APIError(409, "task_finished", str(exc)) from None
    return JSONResponse(await describe(request, service, record), status_code=202)
