"""What a subscriber is sent: its tasks' events, each in its subscription's preview mode, and the
control messages that answer a socket's client messages.

Both wait in one queue (protocol.flow), so a reply is never overtaken by the events it announces
(`subscribed` comes before its subscription's first event). Control messages (`subscribed`,
`unsubscribed`, `error`) are JSON text without `seq` (docs/protocol.md); an SSE stream has none.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from websockets.frames import Frame, Opcode

from latentcast.server.protocol.events import RecordedEvent, encode_for, encode_ws_frame


@dataclasses.dataclass(frozen=True, slots=True)
class EventMessage:
    """An event as one subscriber receives it: in the preview mode its subscription asked for."""

    event: RecordedEvent
    previews: str  # one of PREVIEW_MODES; an event in "none" carries no image (`event_message`)


@dataclasses.dataclass(frozen=True, slots=True)
class ControlMessage:
    """A reply to a client message: never dropped, never coalesced, no seq."""

    body: dict[str, Any]


ServerMessage = EventMessage | ControlMessage


def event_message(event: RecordedEvent, previews: str) -> EventMessage:
    """`event` for a subscriber in `previews` mode. Without previews its image goes at once, so
    that the queue neither holds it nor counts it as a preview dropped."""
    return EventMessage(event.without_preview() if previews == "none" else event, previews)


def websocket_data(message: ServerMessage) -> str | bytes:
    """The WebSocket message: a preview in `binary` mode as a binary frame's payload, else JSON
    text. An event's is made once per mode, however many subscribers receive it."""
    if isinstance(message, EventMessage):
        return encode_for(message.event, message.previews)
    return orjson.dumps(message.body).decode()


def websocket_frame(message: ServerMessage) -> bytes:
    """`websocket_data` as a whole frame, header included, as a server sends it (unmasked,
    uncompressed), for writing straight to the transport (server.api.frame_writer)."""
    if isinstance(message, EventMessage):
        return encode_ws_frame(message.event, message.previews)
    return Frame(Opcode.TEXT, orjson.dumps(message.body)).serialize(mask=False)
