"""A way past ASGI for event frames: uvicorn's sans-I/O WebSocket protocol, plus `write_frame`.

Through ASGI, every frame to every subscriber costs a wakeup of that socket's sender task, then
Starlette's and uvicorn's send wrappers, then websockets building the frame's header: the same
work a hundred times over for a hundred subscribers of one preview, on the event loop whose CPU
torch needs (bench/README.md). An event's frame bytes are the same for every subscriber in one
delivery mode (a server's frames are not masked, and compression is off), so they are made once
(`protocol.events.encode_ws_frame`) and this protocol hands them to the socket's transport as they
are, when nothing is queued for it and its buffer is below the high-water mark.

Everything else (the handshake, reading, pings, close, and every frame that cannot go at once) is
uvicorn's, through ASGI as before. Connections find the writer in the scope's extensions under
`EXTENSION`; under another server or WebSocket implementation it is absent and every frame goes
through ASGI.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

EXTENSION = "latentcast.frame_writer"


class FrameWritingProtocol(WebSocketsSansIOProtocol):
    """`uvicorn.run(..., ws=FrameWritingProtocol)`: the protocol `latentcast serve` runs."""

    def handle_connect(self, event: object) -> None:
        super().handle_connect(event)  # type: ignore[arg-type]
        if not self.close_sent:  # the upgrade was not refused: the app will run with this scope
            self.scope["extensions"][EXTENSION] = self  # type: ignore[index]

    def write_frame(self, frame: bytes) -> bool:
        """Write one serialized frame now and return True, or return False and write nothing: the
        handshake is not done, a close was sent or received, or the transport's buffer is full
        (the caller queues the frame and sends it through ASGI, which waits for the buffer)."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.initial_response is not None
            or self.conn.state is not State.OPEN
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True
