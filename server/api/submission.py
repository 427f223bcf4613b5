"""Submitting a task, the one path every endpoint that creates one takes (native and providers').

In order: the API key; the body validated into `TaskParams` and its webhook; the operator's limits
and where a webhook may go (server.security.webhooks); a model this server serves; room in the
queue and in the caller's in-flight allowance (429s); then `TaskService.submit`. Each refusal is an
`RequestRefused` naming the field and the rule, which the providers' endpoints re-word in their own
shape (server.compat.common).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request

from latentcast.server.api.access import require_key
from latentcast.server.api.context import Context, context
from latentcast.server.api.errors import field_error, invalid, pydantic_fields
from latentcast.server.errors import RequestRefused
from latentcast.server.security import webhooks
from latentcast.server.tasks.catalog import UnknownModel
from latentcast.server.tasks.input_images import (
    INPUT_NAMES,
    InputRejected,
    Picture,
    TaskInputs,
    data_url_bytes,
    is_upload_id,
    natural_size,
    prepare,
    read_picture,
)
from latentcast.server.tasks.params import TaskParams, TaskRequest, check_limits, with_inputs
from latentcast.server.tasks.record import TaskRecord
from latentcast.server.tasks.service import UPLOAD_SECONDS
from latentcast.server.tasks.webhook import TERMINAL_EVENTS, Format, Webhook

PICTURE_FIELDS = frozenset({"image", "mask", "strength", "mask_blur"})
# A worker that comes alive beats within a second or two (--heartbeat).
NO_WORKER_RETRY_SECONDS = 2


async def submit(
    request: Request, body: Mapping[str, Any], *, webhook_format: Format = "native",
    files: Mapping[str, bytes] | None = None,
) -> TaskRecord:
    """Queue the task `body` (native fields) asks for, owned by the request's key, or refuse. Its
    `webhook` gets bodies of `webhook_format` (a door's provider's shape, for its callback);
    `files` are pictures sent as files ("image", "mask": a multipart body's), in place of the
    body's data URLs or upload ids."""
    ctx = context(request)
    caller = await require_key(request)
    params, webhook, inputs = await _validated(ctx, body, webhook_format, files or {})
    await _served(ctx, params.model)
    if await ctx.service.queue_length() >= ctx.settings.max_queue:
        raise RequestRefused(
            429, "queue_full", f"the queue holds {ctx.settings.max_queue} tasks; try again later",
            headers={"Retry-After": "5"},
        )
    with ctx.throttle.in_flight(request, caller) as track:
        return track(await ctx.service.submit(params, owner=caller.owner, webhook=webhook, inputs=inputs))


async def _validated(
    ctx: Context, body: Mapping[str, Any], webhook_format: Format, files: Mapping[str, bytes]
) -> tuple[TaskParams, Webhook | None, TaskInputs | None]:
    """The body as `TaskParams` within this server's limits and models, its webhook and its input
    pictures, or the 4xx that says why."""
    try:
        asked = TaskRequest.model_validate(body)
    except ValidationError as exc:
        fields = pydantic_fields(exc)
        # A bad picture input (a strength out of range among them) is a 400, as an unreadable picture is.
        pictures_only = all(f["field"] in PICTURE_FIELDS for f in fields)
        raise invalid(fields, status=400 if pictures_only else 422) from None
    pictures = await _pictures(ctx, asked, files)
    params, problems = with_inputs(asked.task_params(), image="image" in pictures, mask="mask" in pictures)
    if "image" in pictures and not {"width", "height"} & asked.model_fields_set:
        width, height = natural_size(pictures["image"].image, ctx.settings.limits.max_pixels)
        params = params.model_copy(update={"width": width, "height": height})
    problems += check_limits(params, ctx.settings.limits)
    if params.preview_method == "taesd" and ctx.settings.taesd is None:
        problems.append(("preview_method", "taesd_weights", "preview_method taesd needs a server started with --taesd"))
    webhook, refused = await _webhook(ctx, asked, webhook_format)
    problems += refused
    if problems:
        raise invalid([field_error(*p) for p in problems])
    if "image" not in pictures:
        return params, webhook, None
    try:
        inputs = await asyncio.to_thread(prepare, pictures["image"], pictures.get("mask"), params.width, params.height)
    except InputRejected as rejected:
        raise _bad_picture(rejected) from None
    return params, webhook, inputs


async def _pictures(ctx: Context, asked: TaskRequest, files: Mapping[str, bytes]) -> dict[str, Picture]:
    """The request's input pictures, read and checked (a 400 naming the field when one is not an
    image, declares too many pixels, or names no upload), whichever way each came."""
    pictures = {}
    for name in INPUT_NAMES:
        text: str | None = getattr(asked, name)
        try:
            data = files.get(name) if text is None else await _source_bytes(ctx, name, text)
            if data is not None:
                pictures[name] = await asyncio.to_thread(read_picture, name, data)
        except InputRejected as rejected:
            raise _bad_picture(rejected) from None
    return pictures


async def _source_bytes(ctx: Context, field: str, text: str) -> bytes:
    """The bytes a data URL holds or an upload id names (never a URL: the server fetches nothing)."""
    if not is_upload_id(text):
        return data_url_bytes(field, text)
    data = await ctx.service.upload(text)
    if data is None:
        raise InputRejected(field, "upload", f"no upload {text} (uploads are kept {UPLOAD_SECONDS} s)")
    return data


def _bad_picture(rejected: InputRejected) -> RequestRefused:
    return invalid([field_error(rejected.field, rejected.rule, str(rejected))], status=400)


async def _served(ctx: Context, model: str | None) -> None:
    """A model no live worker serves is refused: 400 when others are served (a wrong name), 503
    with Retry-After when none is (no worker is alive now, on Redis: one may come at any moment)."""
    try:
        await ctx.service.catalog.resolve_now(model)
    except UnknownModel as exc:
        if not exc.served:
            raise RequestRefused(
                503, "no_worker", f"{exc}; retry after Retry-After seconds",
                headers={"Retry-After": str(NO_WORKER_RETRY_SECONDS)},
            ) from None
        raise invalid([field_error("model", "served_model", str(exc))], status=400) from None


async def _webhook(
    ctx: Context, asked: TaskRequest, webhook_format: Format
) -> tuple[Webhook | None, list[tuple[str, str, str]]]:
    """The request's webhook, if it asks for one, or the problems with it: its URL must lead to a
    public host (unless `--webhook-allow-private`), its events need it."""
    if asked.webhook is None:
        if asked.webhook_events is not None:
            return None, [("webhook_events", "requires_webhook", "webhook_events: needs a webhook to deliver them to")]
        return None, []
    try:
        await webhooks.check(asked.webhook, allow_private=ctx.settings.webhook_allow_private)
    except webhooks.RefusedURL as refused:
        return None, [("webhook", refused.rule, f"webhook: {refused}")]
    events = tuple(dict.fromkeys(asked.webhook_events)) if asked.webhook_events is not None else TERMINAL_EVENTS
    return Webhook(asked.webhook, events, webhook_format), []
