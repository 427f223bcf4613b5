"""A way past ASGI for event frames: uvicorn's sans-I/O WebSocket protocol, plus `write_frame`.

Through ASGI, every frame to every subscriber costs a wakeup of that socket's sender task, then
Starlette's and uvicorn's send wrappers, then websockets building the frame's header: the same
work a hundred times over for a hundred subscribers of one preview, on the event loop whose CPU
torch needs (bench/README.md). An event's frame bytes are the same for every subscriber in one
delivery mode (a server's frames are not masked, and compression is off), so they are made once
(`protocol.events.encode_ws_frame`) and this protocol hands them to the socket's transport as they
are, when nothing is being sent on it and its buffer is below the high-water mark
(server.api.subscriber_loop). The frames one callback of the event loop writes to a socket (a
step's progress and its log line, recorded together) go out in one `transport.write` once that
callback returns: one system call a socket per step, not one a frame, and one wake of its client.

Everything else (the handshake, reading, pings, close, and every frame that cannot go at once) is
uvicorn's, through ASGI. Sockets find the writer in the scope's extensions under `EXTENSION`.

The writer reads attributes of uvicorn's `WebSocketsSansIOProtocol` that are not its public API
(`READS`), so pyproject.toml pins the uvicorn releases it is built for, and `frame_writing_protocol`
builds it only where the installed uvicorn has them. Where it cannot (another uvicorn, or no
websockets-sansio at all), `latentcast serve` runs uvicorn's own protocol (`serving_protocol`):
the extension is absent and every frame goes through ASGI, the public send path, as under any
other server.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

import uvicorn
from uvicorn.config import Config
from uvicorn.server import ServerState
from websockets.protocol import State

EXTENSION = "latentcast.frame_writer"
# What `write_frame` reads of uvicorn's protocol, beside `scope` (which the ASGI spec names).
READS = ("handshake_complete", "close_sent", "initial_response", "conn", "writable", "transport", "loop")

log = logging.getLogger("latentcast.api")


def serving_protocol() -> type[asyncio.Protocol] | str:
    """What `latentcast serve` runs sockets with (`uvicorn.run(ws=...)`): the frame writer where the
    installed uvicorn allows it, else uvicorn's own websockets-sansio protocol, else its default."""
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:
        log.warning("uvicorn %s has no websockets-sansio protocol: frames go through ASGI", uvicorn.__version__)
        return "auto"
    return frame_writing_protocol(WebSocketsSansIOProtocol) or "websockets-sansio"


def frame_writing_protocol(base: type[asyncio.Protocol]) -> type[asyncio.Protocol] | None:
    """`base` (uvicorn's websockets-sansio protocol) with `write_frame`, or None, said in the log,
    where `base` lacks what the writer reads."""
    missing = _missing(base)
    if missing:
        log.warning(
            "%s of uvicorn %s lacks %s: frames go through ASGI", base.__name__, uvicorn.__version__, ", ".join(missing)
        )
        return None
    return type("FrameWritingProtocol", (_FrameWriting, base), {"__doc__": _FrameWriting.__doc__})


def _missing(base: type[asyncio.Protocol]) -> list[str]:
    """What the writer reads that an instance of `base` does not have (one made and never connected)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        """Never called: the instance is never connected."""

    loop = asyncio.new_event_loop()
    try:
        probe = base(Config(app=app, log_config=None), ServerState(), {}, _loop=loop)  # type: ignore[call-arg]
    except Exception as failure:  # its constructor is not the one this was built for
        return [f"the constructor this was built for ({failure})"]
    finally:
        loop.close()
    missing = [name for name in READS if not hasattr(probe, name)]
    if "conn" not in missing and not isinstance(getattr(getattr(probe, "conn"), "state", None), State):
        missing.append("conn.state")
    if not callable(getattr(base, "handle_connect", None)):
        missing.append("handle_connect")
    return missing


class _FrameWriting:
    """uvicorn's websockets-sansio protocol, plus `write_frame` for frames made once for many sockets."""

    # uvicorn's, read here (frame_writing_protocol checks that they are there)
    scope: dict[str, Any]
    handshake_complete: bool
    close_sent: bool
    initial_response: Any
    conn: Any
    writable: asyncio.Event
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    _pending: list[bytes] | None = None  # written by `write_frame`, not yet flushed

    def handle_connect(self, event: object) -> None:
        super().handle_connect(event)  # type: ignore[misc]
        if not self.close_sent:  # the upgrade was not refused: the app will run with this scope
            self.scope["extensions"][EXTENSION] = self

    def can_write_now(self) -> bool:
        """Whether `write_frame` would go out at once: the handshake is done, no close was sent or
        received, and the transport's buffer is below its high-water mark."""
        return (
            self.handshake_complete
            and not self.close_sent
            and self.initial_response is None
            and self.conn.state is State.OPEN
            and self.writable.is_set()
            and not self.transport.is_closing()
        )

    def write_frame(self, frame: bytes) -> None:
        """Write one serialized frame (`can_write_now` first: this does not check). It goes out
        with the others written to this socket in the same callback of the loop, once it returns,
        and before anything sent through ASGI after it (`send`)."""
        if self._pending is None:
            self._pending = [frame]
            batch = _batches.get(self.loop)
            if batch is None:
                batch = _batches[self.loop] = _Batch()
            batch.add(self)
        else:
            self._pending.append(frame)

    def flush_frames(self) -> None:
        """Write the frames `write_frame` took, as one write. Dropped if the connection began to
        close meanwhile (a client's close frame, read in between): nothing may follow a close, and
        a client that reconnects resumes from the last seq it got."""
        frames, self._pending = self._pending, None
        if not frames or self.close_sent or self.conn.state is not State.OPEN or self.transport.is_closing():
            return
        self.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

    async def send(self, message: Any) -> None:
        """uvicorn's ASGI send, after the frames written before it."""
        self.flush_frames()
        await super().send(message)  # type: ignore[misc]


class _Batch:
    """The sockets `write_frame` wrote to during one callback of the event loop, flushed when it
    returns (one `call_soon` for all of them): a step's progress and its log line, recorded
    together, leave in one `transport.write` a socket."""

    def __init__(self) -> None:
        self._sockets: list[_FrameWriting] = []

    def add(self, socket: _FrameWriting) -> None:
        if not self._sockets:
            socket.loop.call_soon(self._flush)
        self._sockets.append(socket)

    def _flush(self) -> None:
        sockets, self._sockets = self._sockets, []
        for socket in sockets:
            socket.flush_frames()


_batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batch] = weakref.WeakKeyDictionary()
