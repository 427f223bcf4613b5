"""The pictures a task starts from: uploaded ahead (`POST /v1/uploads`) and read back from the task."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from latentcast.server.api.access import require_key
from latentcast.server.api.context import context
from latentcast.server.api.errors import field_error, invalid, read_request_form
from latentcast.server.api.files import OCTET_STREAM, prefers_octet_stream
from latentcast.server.api.forms import is_multipart
from latentcast.server.api.tasks import find
from latentcast.server.errors import APIError
from latentcast.server.tasks.input_images import INPUT_NAMES, InputRejected, read_picture


async def create_upload(request: Request) -> JSONResponse:
    """One picture, the multipart file `file`, kept for tasks to name by the id answered."""
    await require_key(request)  # before anything about the body is told
    if not is_multipart(request.headers.get("content-type", "")):
        raise invalid([field_error("file", "multipart", "send the picture as the multipart/form-data file `file`")], 400)
    form = await read_request_form(request)
    data = form.files.get("file")
    if data is None:
        raise invalid([field_error("file", "missing", "file: a multipart file named `file` is required")], 400)
    try:
        picture = await asyncio.to_thread(read_picture, "file", data)
    except InputRejected as rejected:
        raise invalid([field_error(rejected.field, rejected.rule, str(rejected))], 400) from None
    upload_id = await context(request).service.save_upload(data)
    width, height = picture.image.size
    body = {"id": upload_id, "bytes": len(data), "width": width, "height": height, "content_type": picture.content_type}
    return JSONResponse(body, status_code=201)


async def get_input(request: Request) -> Response:
    """The task's input picture `name` as it runs from it (PNG at the task's size), opened by the
    task's token or key like its outputs."""
    record = await find(request)
    name = request.path_params["name"]
    data = await context(request).service.input(record.id, name) if name in INPUT_NAMES else None
    if name not in record.inputs or data is None:
        raise APIError(404, "not_found", f"task {record.id} has no input {name!r}")
    own = "image/png"
    return Response(
        data, media_type=OCTET_STREAM if prefers_octet_stream(request.headers.get("accept", ""), own) else own,
        headers={"Cache-Control": "private, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"},
    )
