"""Output files. Names come from the server, never from the request path's say-so."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from latentcast.server.api.context import context
from latentcast.server.api.tasks import find
from latentcast.server.errors import APIError


async def get_file(request: Request) -> Response:
    record = await find(request)
    name = request.path_params["name"]
    output = next((o for o in record.outputs if o["name"] == name), None)
    data = await context(request).files.read(record.id, name) if output else None
    if output is None or data is None:
        raise APIError(404, "not_found", f"task {record.id} has no file {name!r}")
    return Response(
        data,
        media_type=output["contenttype"],
        headers={"Cache-Control": "private, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"},
    )
