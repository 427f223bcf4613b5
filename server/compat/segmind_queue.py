"""Segmind's v2 queue, what the Segmind SDK's `run` and `submit_async` use (since SDK 1.1):
`POST /v2/{slug}` queues the request and answers at once with `request_id`, `status_url` and
`response_url`; `GET /v2/requests/{id}/status` says QUEUED, PROCESSING, COMPLETED or FAILED (with
`error`); `GET /v2/requests/{id}` is the result, `{status, request_id, metrics, output}`.

It is the native task model under Segmind's names: the request id is the task id, so the task
streams its events, is listed and shows on the dashboard like any other. A cancelled task reads as
FAILED, since Segmind has no other end. See docs/compatibility.md.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from latentcast.server.api.tasks import find
from latentcast.server.compat.common import Refusal, endpoint, inference_seconds, invalid, json_body, parse, start
from latentcast.server.compat.segmind import NAMES, SLUG, Txt2ImgRequest, render, task_params
from latentcast.server.errors import RequestRefused
from latentcast.server.protocol.events import TaskStatus
from latentcast.server.tasks.record import TaskRecord

# Segmind's state for each task status; the others (accepted ... postprocessing) are PROCESSING.
_STATES = {
    TaskStatus.QUEUED: "QUEUED",
    TaskStatus.COMPLETED: "COMPLETED",
    TaskStatus.FAILED: "FAILED",
    TaskStatus.CANCELLED: "FAILED",
}
# Segmind answers a FAILED task's status and result with this code, the body still saying FAILED
# (the SDK reads the body whatever the code: segmind/v2.py, `_fetch_terminal_tolerant`).
FAILED_HTTP_STATUS = 422


def _urls(request: Request, task_id: str) -> dict[str, str]:
    base = f"{str(request.base_url).rstrip('/')}/v2/requests/{task_id}"
    return {"status_url": f"{base}/status", "response_url": base}


@endpoint(render)
async def submit(request: Request) -> Response:
    slug = request.path_params["slug"]
    if slug != SLUG:
        raise Refusal("not_found", f"model {slug!r} is not served here; the v2 queue serves {SLUG}")
    body = parse(Txt2ImgRequest, await json_body(request))
    if body.base64:
        raise invalid("base64", "v2_output", "base64: the v2 queue answers with image URLs; use /v1/" + SLUG)
    record = await start(request, task_params(body), NAMES)
    return JSONResponse({"request_id": record.id, "status": "QUEUED", **_urls(request, record.id)})


async def _task(request: Request) -> TaskRecord:
    """The task of the request id, for the key that created it (another key's reads as not found)."""
    try:
        return await find(request)
    except RequestRefused as exc:
        if exc.status == 401:
            raise
        raise Refusal("not_found", f"no request {request.path_params['task_id']!r}") from None


def _progress(record: TaskRecord) -> tuple[dict[str, Any], int]:
    """`status` and `metrics` (and `error` when FAILED), and the HTTP status to answer them with."""
    state = _STATES.get(record.status, "PROCESSING")
    body: dict[str, Any] = {"status": state, "request_id": record.id, "metrics": {}}
    if state == "COMPLETED":
        body["metrics"] = {"inference_time": inference_seconds(record)}
    if state != "FAILED":
        return body, 200
    if record.status is TaskStatus.CANCELLED:
        body["error"] = f"task {record.id} was cancelled"
    else:
        body["error"] = f"task {record.id} failed: {(record.error or {}).get('message') or 'unknown error'}"
    return body, FAILED_HTTP_STATUS


@endpoint(render)
async def status(request: Request) -> Response:
    record = await _task(request)
    body, code = _progress(record)
    return JSONResponse({**body, **_urls(request, record.id)}, status_code=code)


@endpoint(render)
async def result(request: Request) -> Response:
    """The result: `output` is the image's URL (a list of URLs for several samples), null until done."""
    record = await _task(request)
    body, code = _progress(record)
    urls = [output["url"] for output in record.outputs]
    body["output"] = (urls[0] if len(urls) == 1 else urls) if body["status"] == "COMPLETED" else None
    body["seed"] = record.seed
    return JSONResponse(body, status_code=code)


routes = [
    Route("/v2/requests/{task_id}/status", status, methods=["GET"]),
    Route("/v2/requests/{task_id}", result, methods=["GET"]),
    Route("/v2/{slug}", submit, methods=["POST"]),
]
