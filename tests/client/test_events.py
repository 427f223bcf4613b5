"""Decoding frames into typed events, and the server's errors into typed exceptions (no server)."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from latentcast.client import (
    AuthenticationError,
    CancelEvent,
    ConflictError,
    ErrorEvent,
    Event,
    NotFoundError,
    PermissionDeniedError,
    PostprocessEndEvent,
    ProgressEvent,
    QueueEvent,
    RateLimitError,
    ValidationError,
)
from latentcast.client.errors import InternalServerError, error_from_response, error_from_socket
from latentcast.client.events import event_from_frame
from latentcast.wire import FrameError, encode_frame


def _webp(size: tuple[int, int] = (8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="WEBP")
    return buffer.getvalue()


def _progress(preview: dict | None = None) -> dict:
    message = {"step": 3, "steps": 8, "percent": 37.5, "eta_seconds": 1.2, "it_per_s": 4.5}
    if preview is not None:
        message["preview"] = preview
    return {"type": "task_progress", "id": "t1", "seq": 9, "time": 1.5, "message": message}


HEADER = {"format": "webp", "width": 8, "height": 6, "image_width": 64, "image_height": 48}


def test_binary_frame_gives_a_progress_event_with_the_image() -> None:
    image = _webp()
    event = event_from_frame(encode_frame(_progress(HEADER), image))
    assert isinstance(event, ProgressEvent)
    assert (event.task_id, event.id, event.seq, event.step, event.steps, event.percent) == ("t1", "t1", 9, 3, 8, 37.5)
    assert (event.eta_seconds, event.it_per_s, event.terminal) == (1.2, 4.5, False)
    assert event.preview is not None
    preview = event.preview
    assert (preview.format, preview.width, preview.height, preview.image_width, preview.image_height) == (
        "webp", 8, 6, 64, 48
    )
    assert preview.data == image and preview.mime_type == "image/webp"
    assert preview.image().size == (8, 6)


def test_a_preview_enlarged_is_scaled_smoothly_to_its_images_size() -> None:
    # two halves, red and blue: enlarged eightfold, the border between them is a gradient
    small = Image.new("RGB", (8, 6), (255, 0, 0))
    small.paste((0, 0, 255), (4, 0, 8, 6))
    buffer = io.BytesIO()
    small.save(buffer, format="WEBP", lossless=True)
    event = event_from_frame(encode_frame(_progress(HEADER), buffer.getvalue()))
    assert isinstance(event, ProgressEvent) and event.preview is not None
    enlarged = event.preview.image(enlarged=True)
    assert enlarged.size == (64, 48) and enlarged.mode == "RGB"
    row = [enlarged.getpixel((x, 24)) for x in range(64)]
    assert row[0] == (255, 0, 0) and row[-1] == (0, 0, 255)
    reds = [red for red, _, _ in row[24:40]]
    assert len(set(reds)) >= 8 and reds == sorted(reds, reverse=True)  # no hard edge: many steps down


def test_a_preview_without_its_images_size_is_as_large_as_its_image() -> None:
    image = _webp()
    event = event_from_frame(encode_frame(_progress({"format": "webp", "width": 8, "height": 6}), image))
    assert isinstance(event, ProgressEvent) and event.preview is not None
    assert (event.preview.image_width, event.preview.image_height) == (8, 6)
    assert event.preview.image(enlarged=True).size == (8, 6)


def test_json_preview_is_decoded_from_base64_and_left_out_of_the_message() -> None:
    image = _webp()
    raw = _progress({**HEADER, "data": base64.b64encode(image).decode()})
    event = event_from_frame(json.dumps(raw))
    assert isinstance(event, ProgressEvent) and event.preview is not None
    assert event.preview.data == image and event.preview.image_width == 64
    assert event.message["preview"] == HEADER


def test_events_without_previews_and_of_every_kind() -> None:
    assert event_from_frame(json.dumps(_progress())).preview is None  # type: ignore[union-attr]
    queue = event_from_frame('{"type":"task_queue","id":"t","seq":1,"time":0,"message":{"position":2,"queue_length":5}}')
    assert isinstance(queue, QueueEvent) and (queue.position, queue.queue_length) == (2, 5)
    done = event_from_frame(
        json.dumps({"type": "task_postprocess_end", "id": "t", "seq": 20, "time": 0, "message": [
            {"name": "0.png", "contenttype": "image/png", "size": 3, "url": "u", "width": 64, "height": 64, "seed": 7}
        ]})
    )
    assert isinstance(done, PostprocessEndEvent) and done.terminal
    assert done.outputs[0].name == "0.png" and done.outputs[0].extension == ".png" and done.outputs[0].seed == 7
    cancel = event_from_frame('{"type":"task_cancel","id":"t","seq":5,"time":0,"message":{"reason":"by request"}}')
    assert isinstance(cancel, CancelEvent) and cancel.terminal and cancel.reason == "by request"
    warning = event_from_frame('{"type":"task_error","id":"t","seq":5,"time":0,"message":{"code":"interrupted","message":"m"}}')
    assert isinstance(warning, ErrorEvent) and not warning.terminal and not warning.fatal
    fatal = event_from_frame('{"type":"task_error","id":"t","seq":6,"time":0,"message":{"code":"oom","message":"m","fatal":true}}')
    assert isinstance(fatal, ErrorEvent) and fatal.terminal and (fatal.code, fatal.detail) == ("oom", "m")
    future = event_from_frame('{"type":"task_something_new","id":"t","seq":7,"time":0,"message":{"x":1}}')
    assert type(future) is Event and future.message == {"x": 1}


def test_control_messages_and_bad_frames() -> None:
    assert event_from_frame('{"type":"subscribed","id":"t","since":0}') == {"type": "subscribed", "id": "t", "since": 0}
    for bad in (b"\x00\x00", b"\x00\x00\x00\x09{}", "not json", "[1]", '{"type":"task_end","id":"t","seq":"3"}'):
        with pytest.raises(FrameError):
            event_from_frame(bad)


def test_http_errors_are_typed_and_keep_the_servers_message() -> None:
    body = {"error": {"type": "validation_error", "message": "width: bad", "fields": [
        {"field": "width", "rule": "multiple_of", "message": "width: bad"}
    ]}}
    error = error_from_response(422, body)
    assert isinstance(error, ValidationError) and error.status_code == 422 and error.message == "width: bad"
    assert error.field_names == ["width"] and error.fields[0].rule == "multiple_of"
    # an unknown model is a validation error with status 400
    assert isinstance(error_from_response(400, {"error": {"type": "validation_error", "message": "m"}}), ValidationError)
    assert isinstance(error_from_response(401, {"error": {"type": "unauthorized", "message": "m"}}), AuthenticationError)
    assert isinstance(error_from_response(403, {"error": {"type": "forbidden", "message": "m"}}), PermissionDeniedError)
    assert isinstance(error_from_response(404, {"error": {"type": "not_found", "message": "m"}}), NotFoundError)
    assert isinstance(error_from_response(409, {"error": {"type": "task_finished", "message": "m"}}), ConflictError)
    limited = error_from_response(429, {"error": {"type": "queue_full", "message": "m"}}, {"retry-after": "5"})
    assert isinstance(limited, RateLimitError) and limited.retry_after == 5.0
    assert isinstance(error_from_response(502, "Bad Gateway"), InternalServerError)
    assert str(error_from_response(404, {"error": {"type": "not_found", "message": "no task 'x'"}})) == (
        "404 not_found: no task 'x'"
    )


def test_socket_errors_are_typed() -> None:
    assert isinstance(error_from_socket({"type": "error", "code": "not_found", "message": "no task"}), NotFoundError)
    forbidden = error_from_socket({"type": "error", "code": "forbidden", "message": "the token does not match"})
    assert isinstance(forbidden, PermissionDeniedError) and forbidden.message == "the token does not match"
    invalid = error_from_socket({"type": "error", "code": "invalid_since", "message": "since must be"})
    assert isinstance(invalid, ValidationError) and invalid.field_names == ["since"]
