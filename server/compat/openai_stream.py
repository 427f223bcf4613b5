"""The openai SDK's image-generation stream, on AI/ML API's endpoint: what
`images.generate(stream=True, partial_images=N)` reads.

A task's previews become up to N `image_generation.partial_image` events, spread over the
denoising (the first preview at or after each N+1-th of the steps), and each finished image an
`image_generation.completed` event, as Server-Sent Events whose data is the event's JSON (the SDK
reads every `data:` line and stops at the end of the stream). A task that fails, is cancelled or is
not done after `--compat-wait` ends the stream with `{"error": {...}}`, which the SDK raises as an
`APIError` with its message. A client that stops reading leaves the task running, as every
synchronous endpoint does (docs/compatibility.md, "Waiting").
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.requests import Request

from latentcast.server.api.context import context
from latentcast.server.compat.common import Refusal, cancel_late, completed, output_bytes
from latentcast.server.protocol.events import RecordedEvent
from latentcast.server.tasks.record import TaskRecord

# What the SDK's event models carry beside the image, as this server makes images.
_ABOUT = {"background": "opaque", "quality": "auto"}
_NO_USAGE = {
    "input_tokens": 0,
    "input_tokens_details": {"image_tokens": 0, "text_tokens": 0},
    "output_tokens": 0,
    "total_tokens": 0,
}


def partial_steps(steps: int, partials: int) -> list[int]:
    """The steps after which each partial image is due: `partials` of them, evenly spread before the
    last step (fewer when there are fewer steps than that)."""
    return sorted({max(1, steps * k // (partials + 1)) for k in range(1, partials + 1)})


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


async def image_events(
    request: Request, record: TaskRecord, partials: int, error_body: Callable[[Refusal], dict[str, Any]]
) -> AsyncIterator[bytes]:
    """The stream of one queued task, from its live events (`error_body`: a refusal in the
    provider's JSON, for the SDK to raise)."""
    ctx = context(request)
    service, limit = ctx.service, ctx.settings.compat_wait
    live: asyncio.Queue[RecordedEvent] = asyncio.Queue()
    unsubscribe = service.subscribe(record.id, live.put_nowait)
    due = partial_steps(record.params.num_inference_steps, partials)
    size = f"{record.params.width}x{record.params.height}"
    late_after: float | None = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    sent = 0
    try:
        if not (await service.get(record.id)).status.is_final:
            try:
                while True:
                    # each wait on its own: a timeout around the yields would cancel what the reader awaits
                    event = await asyncio.wait_for(live.get(), deadline - loop.time())
                    if event.terminal:
                        break
                    preview_due = sent < len(due) and event.preview is not None and event.message["step"] >= due[sent]
                    if preview_due:
                        yield _sse(_partial(event, sent, size))
                        sent += 1
            except TimeoutError:
                await cancel_late(service, record.id, limit)
                late_after = limit
        try:
            done = completed(await service.get(record.id), late_after=late_after)
            images = await output_bytes(request, done)
        except Refusal as refusal:
            yield _sse(error_body(refusal))
            return
        created = int(done.times.get("task_postprocess_end", done.created_at))
        for image, output in zip(images, done.outputs, strict=True):
            yield _sse({
                "type": "image_generation.completed",
                "b64_json": base64.b64encode(image).decode("ascii"),
                "created_at": created,
                "size": size,
                "output_format": output["contenttype"].removeprefix("image/"),
                **_ABOUT,
                "usage": _NO_USAGE,
            })
    finally:
        unsubscribe()


def _partial(event: RecordedEvent, index: int, size: str) -> dict[str, Any]:
    assert event.preview is not None
    return {
        "type": "image_generation.partial_image",
        "b64_json": base64.b64encode(event.preview.data).decode("ascii"),
        "partial_image_index": index,
        "created_at": int(event.time),
        "size": size,
        "output_format": event.preview.format,
        **_ABOUT,
    }
