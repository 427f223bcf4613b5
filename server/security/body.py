"""Request bodies: at most `--max-body-bytes`, arriving at no less than `--min-body-rate`, read whole
before any endpoint runs.

A declared Content-Length over the limit is refused before a byte of the body is read; a chunked
body (no Content-Length) is refused as soon as it passes the limit. A body that trickles in slower
than the floor (after a grace of `--header-timeout` seconds) is cut too, so a slow client cannot
hold a request open forever. Reading the body here, not in the endpoint, is what makes these
answers the same on every door: an endpoint never sees a body it would have to refuse in its own
words, nor a client that hung up halfway (an ordinary event, logged as one line, not a traceback).

Both refusals close the connection (`Connection: close`): otherwise the server would go on
reading, and throwing away, the rest of a body it has already refused.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from latentcast.server.errors import RequestRefused, error_response

log = logging.getLogger("latentcast.security")

CLOSE = {"Connection": "close"}


def too_large(limit: int) -> RequestRefused:
    return RequestRefused(413, "body_too_large", f"the request body is larger than {limit} bytes", headers=CLOSE)


def too_slow(rate: float) -> RequestRefused:
    message = f"the request body arrived slower than {rate:g} bytes per second"
    return RequestRefused(408, "body_timeout", message, headers=CLOSE)


class HungUp(Exception):
    """The client closed its connection before its body was complete."""


class BodyLimit:
    """ASGI middleware: every HTTP request's body read whole before the app runs, within `max_bytes`,
    at `min_rate` bytes/s or more once `grace` seconds have passed (`min_rate` 0: no floor)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, min_rate: float, grace: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.min_rate = min_rate
        self.grace = grace

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await error_response(too_large(self.max_bytes))(scope, receive, send)
            return
        try:
            body = await self._read(receive)
        except RequestRefused as refused:
            await error_response(refused)(scope, receive, send)
            return
        except HungUp as gone:
            log.info("%s %s: the client hung up after %s of its body", scope["method"], scope["path"], gone)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes:
        loop = asyncio.get_running_loop()
        started = loop.time()
        chunks: list[bytes] = []
        received = 0
        while True:
            if self.min_rate > 0:
                # The allowance grows with every byte that arrives: a large body sent at a fair
                # pace is never cut, a trickle is, wherever it stands.
                allowed = started + self.grace + received / self.min_rate - loop.time()
                try:
                    message = await asyncio.wait_for(receive(), max(allowed, 0.001))
                except TimeoutError:
                    raise too_slow(self.min_rate) from None
            else:
                message = await receive()
            if message["type"] != "http.request":  # http.disconnect
                raise HungUp(f"{received} bytes")
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                raise too_large(self.max_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The app's `receive`: the body, whole, in one message; then the connection's own (a disconnect)."""
    pending: Message | None = {"type": "http.request", "body": body, "more_body": False}

    async def replayed() -> Message:
        nonlocal pending
        if pending is None:
            return await receive()
        message, pending = pending, None
        return message

    return replayed


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None  # a malformed one is the HTTP parser's to refuse
    return None
