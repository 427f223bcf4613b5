"""`GET /v1/tasks/{id}/events`: a task's events as Server-Sent Events.

The SSE `id` of each event is its seq, so a browser's EventSource resumes after a drop with
`Last-Event-ID` and misses nothing. Previews come base64-encoded (`previews=json`, the default)
or not at all (`previews=none`). The stream ends after the task's terminal event; earlier if the
client falls behind on live events (it resumes with Last-Event-ID), or if the API key it was
opened with is revoked (within about a second, as sockets are closed; a token-opened stream does
not depend on any key). The stored log is read a page at a time as the client reads
(server.tasks.feed), so replaying a long log never counts as falling behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import StreamingResponse

from latentcast.server.api.access import given_token, identify
from latentcast.server.api.context import context
from latentcast.server.api.errors import field_error, invalid
from latentcast.server.api.tasks import find
from latentcast.server.observability import metrics
from latentcast.server.protocol.events import Event, encode_sse, encode_stream_error
from latentcast.server.protocol.flow import OutboundQueue
from latentcast.server.security.revocation import RevocationWatch
from latentcast.server.tasks.ports import StoreUnavailable

log = logging.getLogger("latentcast.api")

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
    queue = OutboundQueue(ctx.settings.subscriber_queue, previews=previews != "none")
    wake = asyncio.Event()
    revoked = asyncio.Event()

    def deliver(event: Event, *, replayed: bool) -> None:
        queue.push(event, replayed=replayed)
        wake.set()

    def close_revoked() -> None:
        revoked.set()
        wake.set()

    feed = ctx.service.feed(record.id, since, deliver, wake.set)

    async def stream() -> AsyncIterator[bytes]:
        dropped = metrics.DropCounter(metrics.SSE_PREVIEWS_DROPPED)
        revocation = RevocationWatch(ctx.keys, close_revoked)
        if caller is not None and caller.key is not None:
            revocation.add(caller.key.digest)
        feed.start()
        metrics.SSE_SUBSCRIBERS.inc()
        retry = RETRY_FIELD
        try:
            while True:
                if queue.overflowed:
                    return  # the client reconnects with Last-Event-ID and misses nothing
                if revoked.is_set():
                    return  # its reconnection is refused with 401, like any request with that key
                if feed.replaying:
                    try:
                        await feed.pull()  # the next page, once the last one was taken by the client
                    except StoreUnavailable:
                        return  # the store is out: the client reconnects with Last-Event-ID
                    except Exception as failure:  # e.g. a stored log with a hole (wire.Gap)
                        log.exception("replay of task %s failed; ending its stream", record.id)
                        yield encode_stream_error("replay_failed", f"replay of task {record.id} failed: {failure}")
                        return
                while len(queue):
                    event = queue.pop()
                    yield retry + encode_sse(event, previews)
                    retry = b""
                    metrics.SSE_SENT.inc()
                    if event.terminal:
                        return
                if feed.replaying:
                    continue
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b": keepalive\n\n"
        finally:
            revocation.close()
            feed.close()
            metrics.SSE_SUBSCRIBERS.dec()
            dropped.update(queue)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
