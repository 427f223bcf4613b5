"""Records tests/protocol/frames.json: the frames test_mirror.py feeds to both protocol decoders.

    python -m tests.protocol.record_frames

The valid frames are what the server sends, made by its own encoders (`RecordedEvent`, `encode_for`, the
previewer's `encode_image`): one task's whole life as JSON text (every event type, previews in
`json` and `none` modes), binary preview frames with real JPEG and WebP images, text that is not
ASCII, and control messages. The malformed ones are what a broken proxy or a hostile server could
send; each breaks one rule of `wire.decode_frame`, and both decoders must refuse every one.
Rerun it only when the protocol changes, and commit the result.
"""

from __future__ import annotations

import base64
import struct
from pathlib import Path
from typing import Any

import orjson
from PIL import Image

from latentcast.server.engine.previews import encode_image
from latentcast.server.protocol.events import EncodedPreview, RecordedEvent, encode_for
from latentcast.wire import EventType, envelope

FIXTURE = Path(__file__).with_name("frames.json")
TASK = "9f2c4e1a0b3d5e7f"
T0 = 1795322573.25


def _picture(width: int, height: int) -> Image.Image:
    """A small gradient: real image content, so the encoders produce ordinary JPEG and WebP files."""
    image = Image.new("RGB", (width, height))
    image.putdata([(x * 255 // width, y * 255 // height, 128) for y in range(height) for x in range(width)])
    return image


def _preview(fmt: str, width: int, height: int, image_width: int, image_height: int) -> EncodedPreview:
    return EncodedPreview(fmt, width, height, image_width, image_height, encode_image(_picture(width, height), fmt))


def _lifecycle() -> list[tuple[str, Any, EncodedPreview | None]]:
    """(type, message, preview) of a task as the worker emits it: 2 steps, then a warning and a failure."""
    output = {"name": "0.png", "contenttype": "image/png", "size": 158839, "width": 64, "height": 48, "seed": 7,
              "url": f"http://127.0.0.1:8000/v1/files/{TASK}/0.png"}
    return [
        (EventType.QUEUE, {"position": 1, "queue_length": 3}, None),
        (EventType.ACCEPT, {"worker": "cpu-0", "attempt": 1}, None),
        (EventType.PREPROCESS_START, {}, None),
        (EventType.PREPROCESS_END, {"seconds": 0.08}, None),
        (EventType.ASSIGN, {"device": "cpu"}, None),
        (EventType.START, {"steps": 2, "seed": 7, "width": 64, "height": 48, "images": 1}, None),
        (EventType.OUTPUT, "Generating 1 image(s) of 64x48 in 2 steps with seed 7", None),
        (EventType.PROGRESS, {"step": 1, "steps": 2, "percent": 50.0, "eta_seconds": 0.2, "it_per_s": 4.5},
         _preview("jpeg", 8, 6, 64, 48)),  # latent2rgb: one pixel per latent cell
        (EventType.OUTPUT, "Step 1/2", None),
        (EventType.PROGRESS, {"step": 2, "steps": 2, "percent": 100.0, "eta_seconds": 0.0, "it_per_s": 4.61},
         _preview("webp", 64, 48, 64, 48)),  # a decoded preview: as large as its image (<= 512 px)
        (EventType.OUTPUT, "Step 2/2", None),
        (EventType.OUTPUT_FULL, "Generating ...\nStep 1/2\nStep 2/2", None),
        (EventType.END, {"seconds": 0.43}, None),
        (EventType.POSTPROCESS_START, {}, None),
        (EventType.POSTPROCESS_END, [output], None),
        (EventType.ERROR, {"code": "interrupted", "message": "the worker restarted; queued again"}, None),
        (EventType.ERROR_FULL, "CUDA out of memory", None),
        (EventType.ERROR, {"code": "oom", "message": "out of memory", "fatal": True}, None),
        (EventType.CANCEL, {"reason": "cancelled by request"}, None),
    ]


def _frame(name: str, sent: str | bytes, valid: bool = True) -> dict[str, Any]:
    """One fixture entry: a text frame as it is, a binary one in base64."""
    if isinstance(sent, str):
        return {"name": name, "kind": "text", "data": sent, "valid": valid}
    return {"name": name, "kind": "binary", "data": base64.b64encode(sent).decode("ascii"), "valid": valid}


def _bad(name: str, sent: str | bytes) -> dict[str, Any]:
    return _frame(name, sent, valid=False)


def _prefixed(header: bytes, image: bytes) -> bytes:
    """A binary frame around any header, valid or not (the server's encoder only makes valid ones)."""
    return struct.pack(">I", len(header)) + header + image


def record() -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    events = [RecordedEvent(TASK, seq, type_, T0 + seq / 8, message, preview)
              for seq, (type_, message, preview) in enumerate(_lifecycle(), start=1)]
    for event in events:
        modes = ("json", "none", "binary") if event.preview is not None else ("json",)
        frames += [_frame(f"{event.type} #{event.seq} ({mode})", encode_for(event, mode)) for mode in modes]
    text = "Étape 3/8 — phare au crépuscule, 灯台, 🌅 \"quoted\" \\ \u2028"
    not_ascii = RecordedEvent(TASK, 40, EventType.OUTPUT, T0 + 5, text)
    frames.append(_frame("task_output, not ASCII", encode_for(not_ascii, "json")))
    preview = _preview("jpeg", 16, 16, 128, 128)
    drawn = RecordedEvent(TASK, 41, EventType.PROGRESS, T0 + 6, {"step": 3, "note": "naïve ✓"}, preview)
    frames.append(_frame("binary preview, not ASCII in its envelope", encode_for(drawn, "binary")))
    frames.append(_frame("seq written as 3.0 (JSON has one number type)",
                         '{"type":"task_end","id":"t","seq":3.0,"time":1.5,"message":{"seconds":1}}'))
    # Descriptions a viewer must size either way: previewImageSize and preview_image_size agree on each.
    latent = {"format": "jpeg", "width": 8, "height": 8}
    descriptions = {
        "a preview without its image's size": {"format": "jpeg", "width": 64, "height": 48},
        "an image size written as 64.0": {**latent, "image_width": 64.0, "image_height": 64},
        "an image size that is no number": {**latent, "image_width": "64", "image_height": 64},
        "an image size of zero": {**latent, "image_width": 0, "image_height": 64},
        "a preview with no size at all": {"format": "jpeg"},
    }
    for seq, (name, preview) in enumerate(descriptions.items(), start=50):
        message = {"step": 1, "steps": 1, "preview": preview}
        frames.append(_frame(name, orjson.dumps(envelope(EventType.PROGRESS, TASK, seq, T0 + 7, message)).decode()))
    controls = [
        {"type": "subscribed", "id": TASK, "since": 0},
        {"type": "subscribed", "id": "*", "since": None},
        {"type": "unsubscribed", "id": TASK},
        {"type": "error", "code": "not_found", "message": "no task 'x'", "id": None},
    ]
    frames += [_frame(f"control {c['type']} (id {c['id']})", orjson.dumps(c).decode()) for c in controls]

    header = orjson.dumps({"type": "task_progress", "id": TASK, "seq": 9, "time": T0, "message": {}})
    image = _preview("jpeg", 8, 8, 64, 64).data
    frames += [
        _bad("binary shorter than its length prefix", b"\x00\x00\x01"),
        _bad("binary length beyond the frame", struct.pack(">I", len(header) + 1) + header),
        _bad("binary envelope not JSON", _prefixed(b"{nope", image)),
        _bad("binary envelope not UTF-8", _prefixed(b'{"type":"\xff"}', image)),
        _bad("binary envelope a JSON array", _prefixed(b"[]", image)),
        _bad("text not JSON", "task_end"),
        _bad("text with trailing garbage", '{"type":"subscribed","id":"t"} x'),
        _bad("text NaN", '{"type":"task_end","id":"t","seq":1,"time":NaN,"message":{}}'),
        _bad("text a JSON string", '"task_end"'),
        _bad("no type", '{"id":"t","seq":1,"time":0,"message":{}}'),
        _bad("type not a string", '{"type":7,"id":"t","seq":1,"time":0,"message":{}}'),
        _bad("seq a string", '{"type":"task_end","id":"t","seq":"3","time":0,"message":{}}'),
        _bad("seq zero", '{"type":"task_end","id":"t","seq":0,"time":0,"message":{}}'),
        _bad("seq a fraction", '{"type":"task_end","id":"t","seq":2.5,"time":0,"message":{}}'),
        _bad("seq true", '{"type":"task_end","id":"t","seq":true,"time":0,"message":{}}'),
        _bad("seq beyond 2^53", '{"type":"task_end","id":"t","seq":9007199254740993,"time":0,"message":{}}'),
        _bad("event without id", '{"type":"task_end","seq":1,"time":0,"message":{}}'),
    ]
    return frames


def main() -> None:
    FIXTURE.write_bytes(orjson.dumps({"frames": record()}, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    main()
