"""The Latentcast wire protocol, written once: what the server sends and every client reads.

The server, the Python client, the tests and the benchmarks all import this module, so it is the
lightest layer there is: standard library and orjson only, no I/O. It holds

- the event types (Wiro's lifecycle names plus `task_progress`), the task statuses, and the one
  rule that says which event ends a task's stream;
- the envelope `{"type", "id", "seq", "time", "message"}` and the preview description inside it
  (its own size and the size of the image it previews, which a viewer scales it to);
- the binary preview frame: a 4-byte big-endian length N, N bytes of JSON envelope, the image;
- the seq cursor that lets a subscriber through each event exactly once, in order;
- the enumerations a request may name: preview delivery modes, preview methods and formats, and
  the native schedulers (each provider's names for them are the server's: server/compat/schedulers.py).

static/js/protocol.js mirrors this module for browsers (same names, same terminal rule, same frame
decoding, same cursor); tests/protocol/test_mirror.py runs one set of recorded frames through both
and requires the same envelopes, image bytes and refusals. Change one, change the other.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import struct
from typing import Any, Literal, NamedTuple, Protocol, get_args

import orjson

# -- events and statuses ----------------------------------------------------------------------


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
    """A task's status in its detail (`GET /v1/tasks/{id}`), a projection of its events."""

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
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})

# Events of these types always end the stream; `task_error` ends it only when fatal.
TERMINAL_TYPES = frozenset({EventType.POSTPROCESS_END, EventType.CANCEL})


def is_terminal(type_: str, message: Any) -> bool:
    """True for the one event that ends a task's stream: done, cancelled, or a fatal error."""
    if type_ in TERMINAL_TYPES:
        return True
    return type_ == EventType.ERROR and isinstance(message, dict) and message.get("fatal") is True


def ends_stream(envelope: dict[str, Any]) -> bool:
    """`is_terminal` of a decoded envelope (what tests and benchmarks hold)."""
    return is_terminal(envelope["type"], envelope.get("message"))


# -- what a request may name ------------------------------------------------------------------

# How a subscriber receives previews: beside the envelope, base64 inside it, or not at all.
PreviewMode = Literal["binary", "json", "none"]
PREVIEW_MODES: tuple[PreviewMode, ...] = get_args(PreviewMode)

# How the worker draws a preview of the denoised estimate (server/engine/previews.py).
PreviewMethod = Literal["latent2rgb", "taesd", "vae", "none"]
PREVIEW_METHODS: tuple[PreviewMethod, ...] = get_args(PreviewMethod)

PreviewFormat = Literal["jpeg", "webp"]
PREVIEW_FORMATS: tuple[PreviewFormat, ...] = get_args(PreviewFormat)

# The flow-matching configurations a task may ask for (`scheduler`); server/engine/schedulers.py
# builds each, docs/compatibility.md ("Schedulers") says why each provider name maps where it does.
SchedulerName = Literal[
    "flow_match_euler",
    "flow_match_euler_karras",
    "flow_match_euler_exponential",
    "dpmpp_2m",
    "dpmpp_2m_heun",
    "dpmpp_3m",
    "dpmpp_2s",
    "unipc",
]
SCHEDULERS: tuple[SchedulerName, ...] = get_args(SchedulerName)
DEFAULT_SCHEDULER: SchedulerName = "flow_match_euler"  # every SD3 checkpoint's own

# -- the envelope -----------------------------------------------------------------------------


def envelope(type_: str, task_id: str, seq: int, time: float, message: Any) -> dict[str, Any]:
    """The JSON object every transport sends for one event."""
    return {"type": type_, "id": task_id, "seq": seq, "time": time, "message": message}


def describe_preview(
    format: str, width: int, height: int, image_width: int, image_height: int, data: bytes | None = None
) -> dict[str, Any]:
    """`message.preview`: the preview's format and its own size, the size of the image it previews
    (what a viewer scales it to), and, in `json` mode, its bytes in base64.

    A preview travels at the resolution it carries: a `latent2rgb` preview is one pixel per latent
    cell (an eighth of the image a side), a decoded one (`taesd`, `vae`) at most 512 px a side.
    """
    described: dict[str, Any] = {
        "format": format, "width": width, "height": height, "image_width": image_width, "image_height": image_height,
    }
    if data is not None:
        described["data"] = base64.b64encode(data).decode("ascii")
    return described


def preview_image_size(meta: Any) -> tuple[int, int] | None:
    """The size to show a preview at, from its description: `image_width` x `image_height`, or its
    own `width` x `height` when those are absent (a preview as large as its image); None when
    neither is a pair of whole numbers from 1."""
    if not isinstance(meta, dict):
        return None
    for width_key, height_key in (("image_width", "image_height"), ("width", "height")):
        width, height = _whole(meta.get(width_key)), _whole(meta.get(height_key))
        if width is not None and height is not None:
            return width, height
    return None


class PreviewParts(NamedTuple):
    """A preview read back from an event: its description (without `data`) and its bytes."""

    meta: dict[str, Any]
    data: bytes


def split_preview(message: Any, image: bytes | None) -> tuple[Any, PreviewParts | None]:
    """(the message with its preview's base64 `data` taken out, the preview) of a received event.

    `image` is what followed the envelope in a binary frame; in `json` mode the bytes are in
    `data` instead. A preview whose bytes are missing or not base64 is no preview.
    """
    if not isinstance(message, dict) or not isinstance(message.get("preview"), dict):
        return message, None
    meta = message["preview"]
    data = image
    if "data" in meta:
        try:
            data = base64.b64decode(meta["data"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            data = None
        meta = {key: value for key, value in meta.items() if key != "data"}
        message = {**message, "preview": meta}
    return message, PreviewParts(meta, data) if data else None


# -- frames -----------------------------------------------------------------------------------

_LENGTH = struct.Struct(">I")
# Integers a browser's JSON.parse keeps exactly: a seq beyond this could not round-trip.
MAX_SAFE_INTEGER = 2**53 - 1


class FrameError(ValueError):
    """A frame that is not a valid protocol message (the mirror in protocol.js throws the same)."""


class Frame(NamedTuple):
    """A decoded socket message: its JSON object, and the image bytes of a binary preview frame."""

    envelope: dict[str, Any]
    image: bytes | None


def encode_frame(envelope: dict[str, Any], image: bytes) -> bytes:
    """A binary preview frame: 4-byte big-endian length N, N bytes of JSON envelope, the image."""
    header = orjson.dumps(envelope)
    return _LENGTH.pack(len(header)) + header + image


def decode_frame(frame: str | bytes) -> Frame:
    """One socket message, text or binary, checked: raises `FrameError` for anything malformed.

    Every message is a JSON object with a string `type`. An event (a message with `seq`) also has
    a string `id` and a whole `seq` of at least 1; a control message (`subscribed`, `error`, ...)
    has no `seq`.
    """
    image: bytes | None = None
    if isinstance(frame, str):
        text: str | bytes = frame
    else:
        if len(frame) < _LENGTH.size:
            raise FrameError("binary frame shorter than its length prefix")
        (length,) = _LENGTH.unpack_from(frame)
        if _LENGTH.size + length > len(frame):
            has = len(frame) - _LENGTH.size
            raise FrameError(f"binary frame declares a {length}-byte envelope but has {has} bytes")
        text, image = frame[_LENGTH.size : _LENGTH.size + length], bytes(frame[_LENGTH.size + length :])
    try:
        decoded = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"frame is not valid JSON: {exc}") from None
    return Frame(_checked(decoded), image)


def _checked(message: Any) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise FrameError("frame is not a JSON object")
    if not isinstance(message.get("type"), str):
        raise FrameError("frame has no string 'type'")
    if "seq" in message:
        seq = _whole(message["seq"])
        if seq is None:
            raise FrameError(f"event 'seq' must be a whole number from 1, not {message['seq']!r}")
        message["seq"] = seq
        if not isinstance(message.get("id"), str):
            raise FrameError("event has no string 'id'")
    return message


def _whole(value: Any) -> int | None:
    """`value` if it is a whole number from 1 that a browser's JSON.parse keeps exactly, else None.
    JSON has one number type: 3.0 is 3 to a browser, so it is 3 here too."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SAFE_INTEGER:
        return None
    return value


# -- the seq cursor ---------------------------------------------------------------------------


class Sequenced(Protocol):
    """An event as the cursor sees it (the server's and the client's events both are)."""

    @property
    def seq(self) -> int: ...

    @property
    def terminal(self) -> bool: ...


class Gap(Exception):
    """An event arrived beyond the next expected seq: the caller must re-read (or resubscribe)."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"expected seq {expected}, got {got}")
        self.expected = expected
        self.got = got


@dataclasses.dataclass(slots=True)
class Cursor:
    """The last seq delivered to one subscriber of one task.

    A subscriber resuming with `since: N` sees the stored log and the live feed overlap; letting
    every event through one cursor drops what was already delivered and reports a hole, so each
    event arrives exactly once and in order.
    """

    last: int = 0
    done: bool = False

    def admit(self, event: Sequenced) -> bool:
        """Whether `event` is the next one to deliver; raises `Gap` when some are missing."""
        if self.done or event.seq <= self.last:
            return False
        if event.seq != self.last + 1:
            raise Gap(self.last + 1, event.seq)
        self.last = event.seq
        self.done = event.terminal
        return True
