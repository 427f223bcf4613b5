"""Task events: the envelope every transport sends, and how each transport encodes it.

An event is `{"type", "id", "seq", "time", "message"}`; `seq` counts 1, 2, 3, ... per task with
no gaps so a subscriber always knows what it missed. A `task_progress` event may carry a preview
image; the image travels beside the envelope (a binary WebSocket frame) or inside it (base64),
as each subscriber chose.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import struct
from typing import Any

import orjson


class EventType(enum.StrEnum):
    """Wiro's lifecycle names (so Wiro clients understand the stream), plus `task_progress`."""

    QUEUE = "task_queue"
    ACCEPT = "task_accept"
    PREPROCESS_START = "task_preprocess_start"
    PREPROCESS_END = "task_preprocess_end"
    ASSIGN = "task_assign"
    START = "task_start"
    PROGRESS = "task_progress"
    OUTPUT = "task_output"
    ERROR = "task_error"
    OUTPUT_FULL = "task_output_full"
    ERROR_FULL = "task_error_full"
    END = "task_end"
    POSTPROCESS_START = "task_postprocess_start"
    POSTPROCESS_END = "task_postprocess_end"
    CANCEL = "task_cancel"


class TaskStatus(enum.StrEnum):
    QUEUED = "queued"
    ACCEPTED = "accepted"
    PREPROCESSING = "preprocessing"
    RUNNING = "running"
    POSTPROCESSING = "postprocessing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_STATUSES


_FINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})

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

PREVIEW_MODES = ("binary", "json", "none")


def is_terminal(type_: str, message: Any) -> bool:
    """True for the one event that ends a task's stream."""
    if type_ in (EventType.POSTPROCESS_END, EventType.CANCEL):
        return True
    return type_ == EventType.ERROR and isinstance(message, dict) and message.get("fatal") is True


def status_after(type_: str, message: Any) -> TaskStatus | None:
    """The status an event moves its task to, or None when it does not change it."""
    if type_ == EventType.ERROR:
        return TaskStatus.FAILED if is_terminal(type_, message) else None
    return _STATUS_AFTER.get(type_)


@dataclasses.dataclass(frozen=True, slots=True)
class Preview:
    """An encoded preview image of the denoised estimate."""

    format: str  # "webp" | "jpeg"
    width: int
    height: int
    data: bytes

    def meta(self) -> dict[str, Any]:
        return {"format": self.format, "width": self.width, "height": self.height}


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    task_id: str
    seq: int
    type: str
    time: float
    message: Any
    preview: Preview | None = None

    @property
    def terminal(self) -> bool:
        return is_terminal(self.type, self.message)

    def without_preview(self) -> Event:
        return self if self.preview is None else dataclasses.replace(self, preview=None)

    def envelope(self, previews: str = "none") -> dict[str, Any]:
        """The JSON object for this event; the preview is described, embedded or left out."""
        message = self.message
        if self.preview is not None and previews != "none":
            preview = self.preview.meta()
            if previews == "json":
                preview["data"] = base64.b64encode(self.preview.data).decode("ascii")
            message = {**message, "preview": preview}
        return {"type": self.type, "id": self.task_id, "seq": self.seq, "time": self.time, "message": message}


def encode_json(event: Event, previews: str = "none") -> bytes:
    return orjson.dumps(event.envelope(previews))


def encode_binary(event: Event) -> bytes:
    """A preview frame: 4-byte big-endian length N, N bytes of JSON envelope, the image bytes."""
    assert event.preview is not None
    header = orjson.dumps(event.envelope("binary"))
    return struct.pack(">I", len(header)) + header + event.preview.data


def decode_binary(frame: bytes) -> tuple[dict[str, Any], bytes]:
    """The inverse of `encode_binary`: (envelope, image bytes)."""
    (length,) = struct.unpack_from(">I", frame)
    return orjson.loads(frame[4 : 4 + length]), frame[4 + length :]


def encode_for(event: Event, previews: str) -> bytes | str:
    """What one WebSocket subscriber receives: a binary frame for a preview, else JSON text."""
    if previews == "binary" and event.preview is not None:
        return encode_binary(event)
    return encode_json(event, previews).decode()


def encode_sse(event: Event, previews: str) -> bytes:
    """One Server-Sent Event; its `id` is the seq so `Last-Event-ID` resumes the stream."""
    mode = "json" if previews == "binary" else previews
    data = encode_json(event, mode)
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, event.type.encode(), data)
