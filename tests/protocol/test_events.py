import base64

import orjson
import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from latentcast.server.protocol.events import (
    EncodedPreview,
    EventType,
    RecordedEvent,
    TaskStatus,
    encode_binary,
    encode_for,
    encode_sse,
    encode_ws_frame,
    is_terminal,
    status_after,
)
from latentcast.wire import decode_frame

PREVIEW = EncodedPreview("webp", 8, 6, 64, 48, b"RIFF....WEBP")  # latent size, of a 64x48 image
HEADER = {"format": "webp", "width": 8, "height": 6, "image_width": 64, "image_height": 48}


def progress(seq: int, preview: EncodedPreview | None = PREVIEW) -> RecordedEvent:
    return RecordedEvent("t1", seq, EventType.PROGRESS, 1.5, {"step": 1, "steps": 4}, preview)


@pytest.mark.parametrize(
    ("type_", "message", "terminal"),
    [
        ("task_postprocess_end", [], True),
        ("task_cancel", {"reason": "x"}, True),
        ("task_error", {"code": "c", "message": "m", "fatal": True}, True),
        ("task_error", {"code": "c", "message": "m"}, False),
        ("task_error", "a warning line", False),
        ("task_end", {"seconds": 1}, False),
    ],
)
def test_exactly_these_events_end_a_stream(type_, message, terminal):
    assert is_terminal(type_, message) is terminal


def test_status_follows_lifecycle_events():
    assert status_after("task_queue", {}) is TaskStatus.QUEUED
    assert status_after("task_start", {}) is TaskStatus.RUNNING
    assert status_after("task_postprocess_end", []) is TaskStatus.COMPLETED
    assert status_after("task_error", {"fatal": True}) is TaskStatus.FAILED
    assert status_after("task_error", {"code": "interrupted"}) is None
    assert status_after("task_progress", {}) is None


def test_binary_frame_is_length_prefixed_envelope_then_image():
    frame = encode_binary(progress(3))
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4 - len(PREVIEW.data)
    envelope, image = decode_frame(frame)
    assert image == PREVIEW.data
    assert envelope == {
        "type": "task_progress",
        "id": "t1",
        "seq": 3,
        "time": 1.5,
        "message": {"step": 1, "steps": 4, "preview": HEADER},
    }


def test_the_preview_header_is_the_same_on_every_transport_and_only_json_carries_the_bytes():
    event = progress(5)
    binary, _ = decode_frame(encode_for(event, "binary"))
    as_json = orjson.loads(encode_for(event, "json"))
    data = base64.b64encode(PREVIEW.data).decode()
    assert binary["message"]["preview"] == HEADER
    assert as_json["message"]["preview"] == {**HEADER, "data": data}
    for mode, preview in (("json", {**HEADER, "data": data}), ("binary", {**HEADER, "data": data}), ("none", None)):
        block = encode_sse(event, mode).decode().split("\n")
        sent = orjson.loads(block[2].removeprefix("data: "))["message"]
        assert sent.get("preview") == preview, mode  # SSE is text: a binary subscriber gets base64


def test_each_preview_mode_encodes_the_same_event_its_own_way():
    event = progress(2)
    assert isinstance(encode_for(event, "binary"), bytes)
    as_json = orjson.loads(encode_for(event, "json"))
    assert base64.b64decode(as_json["message"]["preview"]["data"]) == PREVIEW.data
    assert "preview" not in orjson.loads(encode_for(event, "none"))["message"]
    # an event without an image is text in every mode
    assert orjson.loads(encode_for(progress(2, None), "binary"))["seq"] == 2


def test_sse_event_id_is_the_seq():
    lines = encode_sse(progress(7), "none").decode().split("\n")
    assert lines[0] == "id: 7"
    assert lines[1] == "event: task_progress"
    assert orjson.loads(lines[2].removeprefix("data: "))["seq"] == 7
    assert lines[3:] == ["", ""]


def test_an_event_is_encoded_once_per_mode_however_many_subscribers_send_it():
    event = progress(4)
    for mode in ("binary", "json", "none"):
        assert encode_for(event, mode) is encode_for(event, mode)
        assert encode_sse(event, mode) is encode_sse(event, mode)
    assert encode_for(event, "binary") is not encode_for(event, "json")
    # flow control strips older previews subscriber by subscriber: they share one stripped event
    assert event.without_preview() is event.without_preview()
    assert encode_for(event.without_preview(), "binary") == encode_for(event, "none")
    assert event.without_preview() == progress(4, None)  # the cache is no part of the event's value


def parse_server_frame(data: bytes) -> Frame:
    """`data` read as a client reads a server's frame (unmasked), which must use all of it."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        assert reader.at_eof()
        return done.value
    raise AssertionError("the frame is incomplete")


@pytest.mark.parametrize("mode", ["binary", "json", "none"])
@pytest.mark.parametrize("preview", [PREVIEW, None])
def test_a_ready_made_websocket_frame_carries_exactly_encode_for_s_message(mode, preview):
    event = progress(3, preview)
    frame = parse_server_frame(encode_ws_frame(event, mode))
    message = encode_for(event, mode)
    assert frame.fin and not (frame.rsv1 or frame.rsv2 or frame.rsv3)  # whole, uncompressed
    if isinstance(message, bytes):
        assert (frame.opcode, frame.data) == (Opcode.BINARY, message)
    else:
        assert (frame.opcode, frame.data) == (Opcode.TEXT, message.encode())
    assert encode_ws_frame(event, mode) is encode_ws_frame(event, mode)


def test_a_large_preview_gets_the_long_length_header():
    large = EncodedPreview("jpeg", 512, 512, 1024, 1024, bytes(70_000))
    event = RecordedEvent("t1", 1, EventType.PROGRESS, 1.5, {"step": 1, "steps": 4}, large)
    assert parse_server_frame(encode_ws_frame(event, "binary")).data == encode_for(event, "binary")
