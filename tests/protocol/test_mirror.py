"""The two implementations of the wire protocol agree: latentcast.wire (Python) and
static/js/protocol.js (browsers, as a real server serves it) decode the same recorded frames
(tests/protocol/frames.json, from record_frames.py) into the same envelopes and image bytes, show
each preview at the same size, and refuse the same malformed ones."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from latentcast.wire import FrameError, decode_frame, encode_frame, ends_stream, preview_image_size
from tests.support import ServerProcess

FRAMES: list[dict[str, Any]] = orjson.loads(Path(__file__).with_name("frames.json").read_bytes())["frames"]

# Runs in the page: imports the module the server serves and decodes every frame with it.
DECODE_IN_BROWSER = """
async (frames) => {
  const { decodeFrame, endsStream, FrameError, previewImageSize } = await import("/static/js/protocol.js");
  const results = {};
  for (const frame of frames) {
    const data = frame.kind === "text" ? frame.data : Uint8Array.from(atob(frame.data), (c) => c.charCodeAt(0)).buffer;
    try {
      const { envelope, image } = decodeFrame(data);
      let sha256 = null;
      if (image !== null) {
        const digest = await crypto.subtle.digest("SHA-256", await image.arrayBuffer());
        sha256 = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
      }
      const terminal = "seq" in envelope ? endsStream(envelope) : null;
      const imageSize = previewImageSize(envelope.message?.preview);
      results[frame.name] = { envelope, sha256, mime: image?.type ?? null, terminal, imageSize };
    } catch (error) {
      results[frame.name] = { refused: error instanceof FrameError };
    }
  }
  return results;
}
"""


def _raw(frame: dict[str, Any]) -> str | bytes:
    return frame["data"] if frame["kind"] == "text" else base64.b64decode(frame["data"])


def decode_in_python(frame: dict[str, Any]) -> dict[str, Any]:
    """What DECODE_IN_BROWSER reports for one frame, from wire.decode_frame."""
    try:
        envelope, image = decode_frame(_raw(frame))
    except FrameError:
        return {"refused": True}
    message = envelope.get("message")
    size = preview_image_size(message.get("preview") if isinstance(message, dict) else None)
    return {
        "envelope": envelope,
        "sha256": hashlib.sha256(image).hexdigest() if image is not None else None,
        "mime": f"image/{envelope['message']['preview']['format']}" if image is not None else None,
        "terminal": ends_stream(envelope) if "seq" in envelope else None,
        "imageSize": list(size) if size is not None else None,
    }


def test_the_recording_covers_the_protocol() -> None:
    types = {decode_frame(_raw(f)).envelope["type"] for f in FRAMES if f["valid"]}
    assert {"task_queue", "task_progress", "task_postprocess_end", "task_cancel", "task_error", "subscribed"} <= types
    binary = [f for f in FRAMES if f["valid"] and f["kind"] == "binary"]
    formats = {decode_frame(_raw(f)).envelope["message"]["preview"]["format"] for f in binary}
    assert formats == {"jpeg", "webp"}
    # the previews' descriptions: latent size with the image's beside it, as the server sends them
    headers = [decode_frame(_raw(f)).envelope["message"]["preview"] for f in binary]
    assert {"format": "jpeg", "width": 8, "height": 6, "image_width": 64, "image_height": 48} in headers
    sizes = [decode_in_python(f)["imageSize"] for f in FRAMES if f["valid"]]
    assert [64, 48] in sizes and [64, 64] in sizes and [8, 8] in sizes and None in sizes
    assert sum(not f["valid"] for f in FRAMES) >= 15


@pytest.mark.parametrize("frame", FRAMES, ids=[f["name"] for f in FRAMES])
def test_python_decodes_or_refuses_each_frame_as_recorded(frame: dict[str, Any]) -> None:
    decoded = decode_in_python(frame)
    assert decoded.get("refused", False) is not frame["valid"]
    if frame["valid"] and frame["kind"] == "binary":
        # a binary frame is exactly its envelope and image again (the encoder is the inverse)
        envelope, image = decode_frame(_raw(frame))
        assert image is not None and encode_frame(envelope, image) == _raw(frame)


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
async def test_the_browser_decodes_every_frame_as_python_does(server: ServerProcess, page: Any) -> None:
    await page.goto(server.base_url)  # any page of the server's: the module is imported from its origin
    in_browser = await page.evaluate(DECODE_IN_BROWSER, FRAMES)
    in_python = {frame["name"]: decode_in_python(frame) for frame in FRAMES}
    assert in_browser.keys() == in_python.keys()
    for name in in_python:
        assert in_browser[name] == in_python[name], name
    refused = sorted(name for name, result in in_browser.items() if result.get("refused"))
    assert refused == sorted(f["name"] for f in FRAMES if not f["valid"])
