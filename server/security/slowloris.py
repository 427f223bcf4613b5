"""A deadline for each request's head (request line and headers): `--header-timeout` seconds.

uvicorn has none. Its keep-alive timer only runs between requests and stops at the first byte of
the next one, and a fresh connection has no timer at all, so a client that sends its headers a
byte at a time (slow-loris) holds a connection, and its memory, for as long as it likes. Many
such clients exhaust the server's file descriptors.

uvicorn takes the HTTP protocol class to use (`http=`); this one is uvicorn's own (h11, or
httptools when installed) with a timer: armed when a connection opens and when the first byte of
a later request arrives, disarmed when the head is complete (uvicorn then starts a new request
cycle, or hands the connection over to WebSocket). When it fires the connection is closed: there
is no request yet to answer. Slow bodies are `server.security.body`'s.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

log = logging.getLogger("latentcast.security")


class HeadDeadlineProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    header_timeout = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        between_requests = self.cycle is None or self.cycle.response_complete
        if between_requests and self._head_timer is None:
            self._arm()
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # the head was complete: a new request began
            self._disarm()

    def handle_websocket_upgrade(self, *args: Any) -> None:
        self._disarm()
        super().handle_websocket_upgrade(*args)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expire(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            log.debug("closed a connection whose request head was not complete after %g s", self.header_timeout)
            self.transport.close()


def head_deadline(header_timeout: float) -> type[asyncio.Protocol]:
    """The protocol class to give uvicorn as `http=`."""
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"header_timeout": header_timeout})
