"""A task's webhook deliveries, and the newest deliveries of every task (docs/webhooks.md)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from latentcast.server.api.access import require_key
from latentcast.server.api.context import context
from latentcast.server.api.errors import field_error, invalid
from latentcast.server.api.tasks import find

MAX_LIMIT = 200


async def task_deliveries(request: Request) -> JSONResponse:
    """Whoever may read the task (its token or its key) sees its deliveries, in seq order."""
    record = await find(request)
    deliveries = await context(request).service.deliveries(record.id)
    return JSONResponse({"data": [d.public() for d in deliveries]})


async def recent_deliveries(request: Request) -> JSONResponse:
    """Newest first; a key that is not an admin sees the deliveries of its own tasks only."""
    caller = await require_key(request)
    raw = request.query_params.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise invalid([field_error("limit", "range", f"limit must be an integer from 1 to {MAX_LIMIT}")])
    owner = None if caller.sees_all else caller.owner
    deliveries = await context(request).service.recent_deliveries(limit=int(raw), owner=owner)
    return JSONResponse({"data": [d.public() for d in deliveries]})
