"""Submitting a task, the one path every endpoint that creates one takes (native and providers').

In order: the API key; the body validated into `TaskParams`; the operator's limits; a model this
server serves; room in the queue and in the caller's in-flight allowance (429s); then
`TaskService.submit`. Each refusal is an `APIError` naming the field and the rule, which the
providers' endpoints re-word in their own shape (server.compat.common).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request

from latentcast.server.api.access import require_key
from latentcast.server.api.context import Context, context
from latentcast.server.api.errors import field_error, invalid, pydantic_fields
from latentcast.server.errors import APIError
from latentcast.server.tasks.catalog import UnknownModel
from latentcast.server.tasks.params import TaskParams, check_limits
from latentcast.server.tasks.record import TaskRecord

# A worker that comes alive beats within a second or two (--heartbeat).
NO_WORKER_RETRY_SECONDS = 2


async def submit(request: Request, body: Mapping[str, Any], *, callback_url: str | None = None) -> TaskRecord:
    """Queue the task `body` (native fields) asks for, owned by the request's key, or refuse."""
    ctx = context(request)
    caller = await require_key(request)
    params = _validated(ctx, body)
    await _served(ctx, params.model)
    if await ctx.service.queue_length() >= ctx.settings.max_queue:
        raise APIError(
            429, "queue_full", f"the queue holds {ctx.settings.max_queue} tasks; try again later",
            headers={"Retry-After": "5"},
        )
    with ctx.throttle.in_flight(request, caller) as track:
        return track(await ctx.service.submit(params, owner=caller.owner, callback_url=callback_url))


def _validated(ctx: Context, body: Mapping[str, Any]) -> TaskParams:
    """The body as `TaskParams` within this server's limits and models, or the 4xx that says why."""
    try:
        params = TaskParams.model_validate(body)
    except ValidationError as exc:
        raise invalid(pydantic_fields(exc)) from None
    problems = check_limits(params, ctx.settings.limits)
    if params.preview_method == "taesd" and ctx.settings.taesd is None:
        problems.append(("preview_method", "taesd_weights", "preview_method taesd needs a server started with --taesd"))
    if problems:
        raise invalid([field_error(*p) for p in problems])
    return params


async def _served(ctx: Context, model: str | None) -> None:
    """A model no live worker serves is refused: 400 when others are served (a wrong name), 503
    with Retry-After when none is (no worker is alive now, on Redis: one may come at any moment)."""
    try:
        await ctx.service.catalog.resolve_now(model)
    except UnknownModel as exc:
        if not exc.served:
            raise APIError(
                503, "no_worker", f"{exc}; retry after Retry-After seconds", headers={"Retry-After": str(NO_WORKER_RETRY_SECONDS)}
            ) from None
        raise invalid([field_error("model", "served_model", str(exc))], status=400) from None
