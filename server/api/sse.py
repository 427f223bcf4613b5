"""`GET /v1/tasks/{id}/events`: a task's events as Server-Sent Events.

The SSE `id` of each event is its seq, so a browser's EventSource resumes after a drop with
`Last-Event-ID` and misses nothing. Previews come base64-encoded (`previews=json`, the default)
or not at all (`previews=none`). The stream ends after the task's terminal event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import StreamingResponse

from latentcast.server.api.context import context
from latentcast.server.api.errors import field_error, invalid
from latentcast.server.api.tasks import find
from latentcast.server.observability import metrics
from latentcast.server.protocol.events import encode_sse
from latentcast.server.protocol.flow import OutboundQueue

KEEPALIVE_SECONDS = 15.0
# How long a browser's EventSource waits before it reconnects (with Last-Event-ID) after a drop.
# Sent once, in the first event's block: a block of `retry:` alone reaches SSE clients such as
# httpx-sse as an event with empty data, which no client can parse as JSON.
RETRY_FIELD = b"retry: 1000\n"
PREVIEWS = ("json", "none")  # a text stream: base64 previews or none, never binary


def _since(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("since") or "0"
    if not raw.isdigit():
        raise invalid([field_error("since", "integer", "since (or Last-Event-ID) must be a non-negative integer")])
    return int(raw)


async def task_events(request: Request) -> StreamingResponse:
    record = await find(request)
    since = _since(request)
    previews = request.query_params.get("previews", "json")
    if previews not in PREVIEWS:
        raise invalid([field_error("previews", "enum", "previews must be json or none on this stream")])
    ctx = context(request)
    queue = OutboundQueue(ctx.settings.subscriber_queue, previews=previews != "none")
    wake = asyncio.Event()

    def deliver(event: object) -> None:
        queue.push(event)  # type: ignore[arg-type]
        wake.set()

    feed = ctx.service.feed(record.id, since, deliver)

    async def stream() -> AsyncIterator[bytes]:
        dropped = metrics.DropCounter(metrics.SSE_PREVIEWS_DROPPED)
        await feed.start()
        metrics.SSE_SUBSCRIBERS.inc()
        retry = RETRY_FIELD
        try:
            while True:
                if queue.overflowed:
                    return  # the client reconnects with Last-Event-ID and misses nothing
                while len(queue):
                    event = queue.pop()
                    yield retry + encode_sse(event, previews)
                    retry = b""
                    metrics.SSE_SENT.inc()
                    if event.terminal:
                        return
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b": keepalive\n\n"
        finally:
            feed.close()
            metrics.SSE_SUBSCRIBERS.dec()
            dropped.update(queue)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
