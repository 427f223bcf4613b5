"""The preview description inside an event, written by the server and read back by clients."""

from latentcast.client.wire import describe_preview, split_preview

IMAGE = b"\xff\xd8\xff\xe0 a jpeg"


def test_a_json_preview_carries_its_bytes_and_reads_back_without_them():
    message = {"step": 2, "preview": describe_preview("jpeg", 64, 48, IMAGE)}
    read, preview = split_preview(message, None)
    assert preview is not None and preview.data == IMAGE
    assert read == {"step": 2, "preview": {"format": "jpeg", "width": 64, "height": 48}}
    assert preview.meta == read["preview"]


def test_a_binary_frames_image_is_the_preview_of_its_description():
    message = {"step": 2, "preview": describe_preview("webp", 8, 8)}
    assert split_preview(message, IMAGE) == (message, (message["preview"], IMAGE))


def test_a_preview_without_usable_bytes_is_no_preview():
    broken = {"step": 2, "preview": {"format": "jpeg", "width": 8, "height": 8, "data": "not base64!"}}
    read, preview = split_preview(broken, None)
    assert preview is None and read["preview"] == {"format": "jpeg", "width": 8, "height": 8}
    assert split_preview({"step": 2, "preview": describe_preview("jpeg", 8, 8)}, None)[1] is None
    assert split_preview("a log line", None) == ("a log line", None)
