"""`GET /v1/tasks/{id}/events`: a task's events as Server-Sent Events.

The SSE `id` of each event is its seq, so a browser's EventSource resumes after a drop with
`Last-Event-ID` and misses nothing. Previews come base64-encoded (`previews=json`, the default)
or not at all (`previews=none`). The stream ends after the task's terminal event; earlier if the
client falls behind on live events (it resumes with Last-Event-ID), or if the API key it was
opened with is revoked (within about a second, as sockets are closed; a token-opened stream does
not depend on any key). The stored log is read a page at a time as the client reads, so
replaying a long log never counts as falling behind. All of that is the stream's `Subscriber`'s
to decide (protocol.subscriber, without I/O); this module only writes what it gives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import StreamingResponse

from latentcast.server.api.access import given_token, identify
from latentcast.server.api.context import context
from latentcast.server.api.errors import field_error, invalid
from latentcast.server.api.subscriber_loop import SubscriberLoop
from latentcast.server.api.tasks import find
from latentcast.server.observability import metrics
from latentcast.server.protocol.events import encode_sse, encode_stream_error
from latentcast.server.protocol.messages import EventMessage
from latentcast.server.protocol.subscriber import Subscriber

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
    caller = None if given_token(request) is not None else await identify(request)
    subscriber = Subscriber.stream(queue_size=ctx.settings.subscriber_queue, clock=asyncio.get_running_loop().time)
    loop = SubscriberLoop(subscriber, ctx.service, ctx.keys)

    async def stream() -> AsyncIterator[bytes]:
        dropped = metrics.DropCounter(metrics.SSE_PREVIEWS_DROPPED)
        loop.follow(record.id, since, previews)
        if caller is not None and caller.key is not None:
            loop.watch_key(caller.key.digest)
        metrics.SSE_SUBSCRIBERS.inc()
        retry = RETRY_FIELD
        try:
            async with contextlib.aclosing(loop.messages(keepalive=KEEPALIVE_SECONDS)) as messages:
                async for message in messages:
                    if message is None:
                        yield b": keepalive\n\n"
                        continue
                    assert isinstance(message, EventMessage)  # a stream has no control messages
                    yield retry + encode_sse(message.event, message.previews)
                    retry = b""
                    metrics.SSE_SENT.inc()
            # The client reconnects with Last-Event-ID and misses nothing, unless the server failed
            # (a stored log it cannot replay): then it learns why.
            close = subscriber.close
            if close is not None and close.failure is not None:
                yield encode_stream_error(close.failure, close.reason)
        finally:
            loop.close()
            metrics.SSE_SUBSCRIBERS.dec()
            dropped.update(subscriber)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
