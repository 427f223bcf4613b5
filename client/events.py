"""Typed task events, read from the frames they arrive in.

Every event has the envelope's `type`, `task_id`, `seq`, `time` and raw `message`; each type adds
its message's fields (`ProgressEvent.step`, `QueueEvent.position`, ...). A `ProgressEvent` may
carry a `Preview`: the decoded image bytes with their format and size, and the size of the image
they preview (`preview.image()` gives a PIL image, `preview.image(enlarged=True)` one at that
size). A type this client does not know yet arrives as a plain `Event`.

The frames themselves (JSON text, or a binary preview frame), the terminal rule and the event
type names are the wire protocol, `latentcast.wire`; this module only types what it decodes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentcast.client.models import Output, decode_image
from latentcast.wire import EventType, decode_frame, is_terminal, preview_image_size, split_preview

if TYPE_CHECKING:
    from PIL import Image


@dataclasses.dataclass(frozen=True, slots=True)
class Preview:
    """A preview image of the denoised estimate after a step: encoded bytes, format and size.

    It comes at the resolution it carries (`width` x `height`): a `latent2rgb` preview has one
    pixel per latent cell, an eighth of the image a side; `image_width` x `image_height` is the
    size of the image it previews, which `image(enlarged=True)` scales it to.
    """

    format: str  # "webp" | "jpeg"
    width: int
    height: int
    image_width: int
    image_height: int
    data: bytes = dataclasses.field(repr=False)

    @property
    def mime_type(self) -> str:
        return f"image/{self.format}"

    @property
    def extension(self) -> str:
        return ".jpg" if self.format == "jpeg" else f".{self.format}"

    def image(self, *, enlarged: bool = False) -> Image.Image:
        """The preview decoded as a PIL image (needs Pillow); `enlarged`: scaled smoothly (bicubic)
        to the image's size, as the pages show it."""
        from PIL import Image

        image = decode_image(self.data)
        size = (self.image_width, self.image_height)
        if enlarged and image.size != size and min(size) > 0:
            return image.resize(size, Image.Resampling.BICUBIC)
        return image

    def save(self, path: str | Path) -> Path:
        """Write the encoded bytes as they came (no re-encoding)."""
        path = Path(path)
        path.write_bytes(self.data)
        return path


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One event of a task's stream. `message` is the server's message as sent."""

    type: str
    task_id: str
    seq: int
    time: float
    message: Any = dataclasses.field(repr=False)

    @property
    def id(self) -> str:
        """The task id (the envelope's `id`)."""
        return self.task_id

    @property
    def terminal(self) -> bool:
        """True for the event that ends the stream."""
        return is_terminal(self.type, self.message)

    @classmethod
    def _fields(cls, message: Any, preview: Preview | None) -> dict[str, Any]:
        return {}


@dataclasses.dataclass(frozen=True, slots=True)
class QueueEvent(Event):
    """`task_queue`: accepted into the queue, or moved in it (`position` 1 is next)."""

    position: int | None = None
    queue_length: int | None = None

    @classmethod
    def _fields(cls, message: Any, preview: Preview | None) -> dict[str, Any]:
        return {"position": _get(message, "position", int), "queue_length": _get(message, "queue_length", int)}


@dataclasses.dataclass(frozen=True, slots=True)
class AcceptEvent(Event):
    """`task_accept`: a worker took the task (`attempt` counts from 1)."""

    worker: str | None = None
    attempt: int = 1

    @classmethod
    def _fields(cls, message: Any, preview: Preview | None) -> dict[str, Any]:
        return {"worker": _get(message, "worker", str), "attempt": _get(message, "attempt", int) or 1}


@dataclasses.dataclass(frozen=True, slots=True)
class PreprocessStartEvent(Event):
    """`task_preprocess_start`: the prompt is being encoded."""


@dataclasses.dataclass(frozen=True, slots=True)
class PreprocessEndEvent(Event):
    """`task_preprocess_end`: the prompt is encoded."""

    seconds: float | None = None

    @classmethod
    def _fields(cls, message: Any, preview: Preview | None) -> dict[str, Any]:
        return {"seconds": _get(message, "seconds", float)}


@dataclasses.dataclass(frozen=True, slots=True)
class AssignEvent(Event):
    """`task_assign`: bound to a device."""

    device: str | None = None

    @classmethod
    def _fields(cls, message: Any, preview: Preview | None) -> dict[str, Any]:
        return {"device": _get(message, "device", str)}


@dataclasses.dataclass(frozen=True, slots=True)
class StartEvent(Event):
    """`task_start`: denoising begins."""

    steps: int | None = None
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    images: int | None = None

    @classmethod
    def _fields(cls, message: Any, preview: Preview | None) -> dict[str, Any]:
        return {key: _get(message, key, int) for key in ("steps", "seed", "width", "height", "images")}


@dataclasses.dataclass(frozen=True, slots=True)
class OutputEvent(Event):
    """`task_output`: one log line (`Step 3/28` after each step)."""

    text: str = ""

    @classmethod
    def _fields(cls, message: Any, preview: Preview | None) -> dict[str, Any]:
        return {"text": message if isinstance(message, str) else json.dumps(message)}


@dataclasses.dataclass(frozen=True, slots=True)
class ProgressEvent(Event):
    """`task_progress`: a step finished; `preview` is the image after it, when one was sent."""

    step: int = 0
    steps: int = 0
    percent: float = 0.0
    eta_seconds: float | None = None
    it_per_s: float | None = None
    preview: Preview | None = None

    @classmethod
    def _fields(cls, message: Any, preview: Preview | None) -> dict[str, Any]:
        return {
            "step": _get(message, "step", int) or 0,
            "steps": _get(message, "steps", int) or 0,
            "percent": _get(message, "percent", float) or 0.0,
            "eta_seconds": _get(message, "eta_seconds", float),
            "it_per_s": _get(message, "it_per_s", float),
            "preview": preview,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class OutputFullEvent(Event):
    """`task_output_full`: the whole log, once, after denoising (or on cancel or failure)."""

    text: str = ""

    @classmethod
    def _fields(cls, message: Any, preview: Preview | None) -> dict[str, Any]:
        return {"text": message if isinstance(message, str) else ""}


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorFullEvent(Event):
    """`task_error_full`: the error text, once, on failure."""

    text: str = ""

    @classmethod
    def _fields(cls, message: Any, preview: Preview | None) -> dict[str, Any]:
        return {"text": message if isinstance(message, str) else ""}


@dataclasses.dataclass(frozen=True, slots=True)
class EndEvent(Event):
    """`task_end`: denoising and decoding finished."""

    seconds: float | None = None

    @classmethod
    def _fields(cls, message: Any, preview: Preview | None) -> dict[str, Any]:
        return {"seconds": _get(message, "seconds", float)}


@dataclasses.dataclass(frozen=True, slots=True)
class PostprocessStartEvent(Event):
    """`task_postprocess_start`: the images are being encoded and stored."""


@dataclasses.dataclass(frozen=True, slots=True)
class PostprocessEndEvent(Event):
    """`task_postprocess_end` (terminal): done; `outputs` are the images."""

    outputs: list[Output] = dataclasses.field(default_factory=list)

    @classmethod
    def _fields(cls, message: Any, preview: Preview | None) -> dict[str, Any]:
        items = message if isinstance(message, list) else []
        return {"outputs": [Output.from_dict(o) for o in items if isinstance(o, dict)]}


@dataclasses.dataclass(frozen=True, slots=True)
class CancelEvent(Event):
    """`task_cancel` (terminal): the task was cancelled."""

    reason: str = ""

    @classmethod
    def _fields(cls, message: Any, preview: Preview | None) -> dict[str, Any]:
        return {"reason": _get(message, "reason", str) or "cancelled"}


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorEvent(Event):
    """`task_error`: a warning (e.g. `interrupted`, then retried), or terminal when `fatal`."""

    code: str | None = None
    detail: str = ""
    fatal: bool = False

    @classmethod
    def _fields(cls, message: Any, preview: Preview | None) -> dict[str, Any]:
        return {
            "code": _get(message, "code", str),
            "detail": _get(message, "message", str) or "",
            "fatal": isinstance(message, dict) and message.get("fatal") is True,
        }


EVENT_TYPES: dict[str, type[Event]] = {
    EventType.QUEUE: QueueEvent,
    EventType.ACCEPT: AcceptEvent,
    EventType.PREPROCESS_START: PreprocessStartEvent,
    EventType.PREPROCESS_END: PreprocessEndEvent,
    EventType.ASSIGN: AssignEvent,
    EventType.START: StartEvent,
    EventType.OUTPUT: OutputEvent,
    EventType.PROGRESS: ProgressEvent,
    EventType.OUTPUT_FULL: OutputFullEvent,
    EventType.ERROR_FULL: ErrorFullEvent,
    EventType.END: EndEvent,
    EventType.POSTPROCESS_START: PostprocessStartEvent,
    EventType.POSTPROCESS_END: PostprocessEndEvent,
    EventType.CANCEL: CancelEvent,
    EventType.ERROR: ErrorEvent,
}


def event_from_envelope(envelope: dict[str, Any], image: bytes | None = None) -> Event:
    """The typed event for a checked envelope (`wire.decode_frame`); `image` is the bytes that
    followed it in a binary frame."""
    type_ = envelope["type"]
    message, parts = split_preview(envelope.get("message"), image)
    preview = None
    if parts is not None:
        width, height = _get(parts.meta, "width", int) or 0, _get(parts.meta, "height", int) or 0
        image_width, image_height = preview_image_size(parts.meta) or (width, height)
        preview = Preview(
            format=str(parts.meta.get("format", "webp")),
            width=width,
            height=height,
            image_width=image_width,
            image_height=image_height,
            data=parts.data,
        )
    cls = EVENT_TYPES.get(type_, Event)
    return cls(
        type=type_,
        task_id=envelope["id"],
        seq=envelope["seq"],
        time=_get(envelope, "time", float) or 0.0,
        message=message,
        **cls._fields(message, preview),
    )


def event_from_frame(frame: str | bytes) -> Event | dict[str, Any]:
    """A socket message as a typed `Event`, or, for a control message (no `seq`), its JSON object.
    Raises `wire.FrameError` for a malformed frame."""
    envelope, image = decode_frame(frame)
    if "seq" not in envelope:
        return envelope
    return event_from_envelope(envelope, image)


def _get(message: Any, key: str, kind: type) -> Any:
    """`message[key]` converted to `kind`, or None when absent or not convertible."""
    if not isinstance(message, dict) or message.get(key) is None:
        return None
    try:
        return kind(message[key])
    except (TypeError, ValueError):
        return None
