"""The native task API: create, read, list, cancel and delete tasks."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from latentcast.server.api.access import check_access, given_token, no_task, require_key
from latentcast.server.api.context import context
from latentcast.server.api.errors import field_error, invalid, json_object, read_request_form
from latentcast.server.api.forms import is_multipart
from latentcast.server.api.submission import submit
from latentcast.server.errors import APIError
from latentcast.server.protocol.events import TaskStatus
from latentcast.server.tasks.record import TaskRecord
from latentcast.server.tasks.service import TaskFinished, TaskNotFinished, TaskNotFound, TaskService


def urls(request: Request, record: TaskRecord) -> dict[str, str]:
    base = str(request.base_url).rstrip("/")
    socket = "ws" + base[4:] if base.startswith("http") else base
    return {
        "self": f"{base}/v1/tasks/{record.id}",
        "cancel": f"{base}/v1/tasks/{record.id}/cancel",
        "events": f"{base}/v1/tasks/{record.id}/events",
        "deliveries": f"{base}/v1/tasks/{record.id}/deliveries",
        "socket": f"{socket}/v1/ws",
        "page": f"{base}/t/{record.id}?token={record.token}",
    }


async def describe(request: Request, service: TaskService, record: TaskRecord) -> dict[str, Any]:
    detail = record.public(str(request.base_url).rstrip("/"))
    detail["position"] = await service.position(record.id) if record.status is TaskStatus.QUEUED else None
    detail["urls"] = urls(request, record)
    return detail


async def find(request: Request, *, change: bool = False) -> TaskRecord:
    """The task named in the path, if the request's token or key opens it (`change`: its key must).

    The key is checked before the lookup, so that without one nobody learns which ids exist.
    """
    token = given_token(request)
    caller = await require_key(request) if change or token is None else None
    try:
        record = await context(request).service.get(request.path_params["task_id"])
    except TaskNotFound:
        raise no_task(request.path_params["task_id"]) from None
    check_access(record, token, caller)
    return record


async def create_task(request: Request) -> JSONResponse:
    """A JSON body, or the same fields as multipart/form-data with the pictures as files."""
    await require_key(request)  # before anything about the body is told
    if is_multipart(request.headers.get("content-type", "")):
        form = await read_request_form(request)
        record = await submit(request, form.fields, files=form.files)
    else:
        record = await submit(request, await json_object(request))
    body = await describe(request, context(request).service, record)
    body["token"] = record.token
    return JSONResponse(body, status_code=201, headers={"Location": body["urls"]["self"]})


async def get_task(request: Request) -> JSONResponse:
    record = await find(request)
    return JSONResponse(await describe(request, context(request).service, record))


async def list_tasks(request: Request) -> JSONResponse:
    """Newest first; a key that is not an admin lists only its own tasks."""
    caller = await require_key(request)
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
        owner = None if caller.sees_all else caller.owner
        page = await service.list(status=status, limit=limit, cursor=query.get("cursor"), owner=owner)
    except ValueError as exc:
        raise invalid([field_error("cursor", "cursor", f"cursor: {exc}")]) from None
    return JSONResponse(
        {"data": [await describe(request, service, r) for r in page.items], "next_cursor": page.next_cursor}
    )


async def cancel_task(request: Request) -> JSONResponse:
    record = await find(request, change=True)
    service = context(request).service
    try:
        record = await service.cancel(record.id)
    except TaskFinished as exc:
        raise APIError(409, "task_finished", str(exc)) from None
    return JSONResponse(await describe(request, service, record), status_code=202)


async def delete_task(request: Request) -> Response:
    """An ended task goes with its events and files (204); one still queued or running is 409."""
    record = await find(request, change=True)
    try:
        await context(request).service.delete(record.id)
    except TaskNotFinished as exc:
        raise APIError(409, "task_not_finished", str(exc)) from None
    except TaskNotFound:
        raise no_task(record.id) from None  # deleted by another request meanwhile
    return Response(status_code=204)
