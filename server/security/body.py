"""Request bodies: at most `--max-body-bytes`, arriving at no less than `--min-body-rate`.

Enforced as the body streams in, not after it is read: a declared Content-Length over the limit
is refused before a byte of the body is read, and a chunked body (no Content-Length) is cut as
soon as it passes the limit. A body that trickles in slower than the floor (after a grace of
`--header-timeout` seconds) is cut too, so a slow client cannot hold a request open forever.

Both refusals close the connection (`Connection: close`): otherwise the server would go on
reading, and throwing away, the rest of a body it has already refused.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from latentcast.server.errors import APIError, error_response

CLOSE = {"Connection": "close"}


def too_large(limit: int) -> APIError:
    return APIError(413, "body_too_large", f"the request body is larger than {limit} bytes", headers=CLOSE)


def too_slow(rate: float) -> APIError:
    message = f"the request body arrived slower than {rate:g} bytes per second"
    return APIError(408, "body_timeout", message, headers=CLOSE)


class BodyLimit:
    """ASGI middleware: every HTTP request's body within `max_bytes`, at `min_rate` bytes/s or more
    once `grace` seconds have passed (`min_rate` 0: no floor)."""

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
        await self.app(scope, self._limited(receive), send)

    def _limited(self, receive: Receive) -> Receive:
        loop = asyncio.get_running_loop()
        started = loop.time()
        received = 0
        complete = False

        async def limited() -> Message:
            nonlocal received, complete
            if complete:  # e.g. waiting for the client to hang up: no body left to time
                return await receive()
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
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise too_large(self.max_bytes)
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        return limited


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None  # a malformed one is the HTTP parser's to refuse
    return None
