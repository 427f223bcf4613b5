"""Output files. Names come from the server, never from the request path's say-so."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from latentcast.server.api.context import context
from latentcast.server.api.tasks import find
from latentcast.server.errors import APIError

# What a client that wants a file's bytes, whatever they are, asks for (generated API clients read
# this type, and no image type, as a file).
OCTET_STREAM = "application/octet-stream"


async def get_file(request: Request) -> Response:
    record = await find(request)
    name = request.path_params["name"]
    output = next((o for o in record.outputs if o["name"] == name), None)
    data = await context(request).files.read(record.id, name) if output else None
    if output is None or data is None:
        raise APIError(404, "not_found", f"task {record.id} has no file {name!r}")
    own = output["contenttype"]
    return Response(
        data,
        media_type=OCTET_STREAM if prefers_octet_stream(request.headers.get("accept", ""), own) else own,
        headers={"Cache-Control": "private, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"},
    )


def prefers_octet_stream(accept: str, content_type: str) -> bool:
    """Whether `Accept` ranks application/octet-stream above the file's own type (its quality, or
    that of `image/*` or `*/*`, whichever names it most closely)."""
    ranks: dict[str, float] = {}
    for part in accept.split(","):
        media, *options = (piece.strip() for piece in part.split(";"))
        quality = next((option[2:] for option in options if option.startswith("q=")), "1")
        try:
            ranks[media.lower()] = float(quality)
        except ValueError:
            continue
    if OCTET_STREAM not in ranks:
        return False
    own = next((ranks[name] for name in (content_type, f"{content_type.split('/')[0]}/*", "*/*") if name in ranks), 0.0)
    return ranks[OCTET_STREAM] > own
