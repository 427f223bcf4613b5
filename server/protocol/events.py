"""The server's events, and how each transport encodes them.

The protocol itself (event types, statuses, the terminal rule, the envelope, the binary frame)
is `latentcast.wire`, shared with every client; this module adds what only the server holds: a
`RecordedEvent` with its `EncodedPreview` image, the status each event moves a task to, and the
encodings for WebSocket and SSE. `seq` counts 1, 2, 3, ... per task with no gaps, so a
subscriber always knows what it missed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from websockets.frames import Frame, Opcode

from latentcast.wire import (
    PREVIEW_MODES,
    EventType,
    TaskStatus,
    describe_preview,
    encode_frame,
    envelope,
    is_terminal,
)

__all__ = [
    "PREVIEW_MODES",
    "RecordedEvent",
    "EventType",
    "EncodedPreview",
    "TaskStatus",
    "encode_binary",
    "encode_for",
    "encode_json",
    "encode_sse",
    "encode_ws_frame",
    "is_terminal",
    "status_after",
]

# The status a task enters when an event of this type is recorded; other types leave it as is.
_STATUS_AFTER: dict[str, TaskStatus] = {
    EventType.QUEUE: TaskStatus.QUEUED,
    EventType.ACCEPT: TaskStatus.ACCEPTED,
    EventType.PREPROCESS_START: TaskStatus.PREPROCESSING,
    EventType.START: TaskStatus.RUNNING,
    EventType.POSTPROCESS_START: TaskStatus.POSTPROCESSING,
    EventType.POSTPROCESS_END: TaskStatus.COMPLETED,
    EventType.CANCEL: TaskStatus.CANCELLED,
}


def status_after(type_: str, message: Any) -> TaskStatus | None:
    """The status an event moves its task to, or None when it does not change it."""
    if type_ == EventType.ERROR:
        return TaskStatus.FAILED if is_terminal(type_, message) else None
    return _STATUS_AFTER.get(type_)


@dataclasses.dataclass(frozen=True, slots=True)
class EncodedPreview:
    """An encoded preview image of the denoised estimate, at the resolution it carries
    (`width` x `height`), of an image of `image_width` x `image_height` (wire.describe_preview)."""

    format: str  # one of wire.PREVIEW_FORMATS
    width: int
    height: int
    image_width: int
    image_height: int
    data: bytes

    def __reduce__(self) -> tuple[Any, ...]:
        # Each preview crosses a worker process's channel: see NewEvent.__reduce__ (tasks.ports).
        return EncodedPreview, (self.format, self.width, self.height, self.image_width, self.image_height, self.data)


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One recorded event. It goes to every subscriber as the same object, so each encoding of it
    is made once and kept here (`_encoded`, by delivery mode): a thousand subscribers in one mode
    cost one orjson call, one base64 and one binary frame, not a thousand."""

    task_id: str
    seq: int
    type: str
    time: float
    message: Any
    preview: EncodedPreview | None = None
    _encoded: dict[str, Any] = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled without its encodings: they are this process's cache, and a worker process's
        # `emit_many` answer (server.worker_process) would otherwise carry every frame made for
        # the subscribers back across the channel.
        return RecordedEvent, (self.task_id, self.seq, self.type, self.time, self.message, self.preview)

    @property
    def terminal(self) -> bool:
        return is_terminal(self.type, self.message)

    def without_preview(self) -> RecordedEvent:
        """The event without its image; the same object for every subscriber that strips it
        (flow control's latest-wins), so its encodings are shared too."""
        if self.preview is None:
            return self
        bare = self._encoded.get("bare")
        if bare is None:
            bare = self._encoded["bare"] = dataclasses.replace(self, preview=None)
        return bare

    def envelope(self, previews: str = "none") -> dict[str, Any]:
        """The JSON object for this event; the preview is described, embedded or left out."""
        message = self.message
        if self.preview is not None and previews != "none":
            p = self.preview
            data = p.data if previews == "json" else None
            described = describe_preview(p.format, p.width, p.height, p.image_width, p.image_height, data)
            message = {**message, "preview": described}
        return envelope(self.type, self.task_id, self.seq, self.time, message)


def encode_json(event: RecordedEvent, previews: str = "none") -> bytes:
    return orjson.dumps(event.envelope(previews))


def encode_binary(event: RecordedEvent) -> bytes:
    """A preview event as a binary frame (wire.encode_frame): the image travels beside the JSON."""
    assert event.preview is not None
    return encode_frame(event.envelope("binary"), event.preview.data)


def encode_for(event: RecordedEvent, previews: str) -> bytes | str:
    """What a WebSocket subscriber in `previews` mode receives: a binary frame for a preview, else
    JSON text. Made once per event and mode, however many subscribers receive it."""
    mode = previews if event.preview is not None else "none"  # without an image every mode reads alike
    encoded = event._encoded.get(mode)
    if encoded is None:
        encoded = event._encoded[mode] = encode_binary(event) if mode == "binary" else encode_json(event, mode).decode()
    return encoded


def encode_ws_frame(event: RecordedEvent, previews: str) -> bytes:
    """`encode_for`'s message as a whole WebSocket frame, header included, as a server sends it
    (unmasked, uncompressed): the bytes are the same for every subscriber in one mode, so the
    socket layer writes them as they are (server.api.frame_writer). Made once per event and mode."""
    key = "frame-" + (previews if event.preview is not None else "none")
    frame = event._encoded.get(key)
    if frame is None:
        data = encode_for(event, previews)
        opcode, payload = (Opcode.BINARY, data) if isinstance(data, bytes) else (Opcode.TEXT, data.encode())
        frame = event._encoded[key] = Frame(opcode, payload).serialize(mask=False)
    return frame


def encode_stream_error(code: str, message: str) -> bytes:
    """The last block of an SSE stream the server cannot go on with: an event of type
    `stream_error` (no `id`, it is no task event), so a client learns why its stream ended."""
    return b"event: stream_error\ndata: %s\n\n" % orjson.dumps({"code": code, "message": message})


def encode_sse(event: RecordedEvent, previews: str) -> bytes:
    """One Server-Sent Event; its `id` is the seq so `Last-Event-ID` resumes the stream. Made once
    per event and mode, as `encode_for` is."""
    mode = "json" if previews == "binary" else previews
    key = "sse-" + (mode if event.preview is not None else "none")
    encoded = event._encoded.get(key)
    if encoded is None:
        data = encode_json(event, mode)
        encoded = event._encoded[key] = b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, event.type.encode(), data)
    return encoded
