"""The preview description inside an event, written by the server and read back by clients."""

import pytest

from latentcast.wire import describe_preview, preview_image_size, split_preview

IMAGE = b"\xff\xd8\xff\xe0 a jpeg"


def test_a_json_preview_carries_its_bytes_and_reads_back_without_them():
    message = {"step": 2, "preview": describe_preview("jpeg", 8, 6, 64, 48, IMAGE)}
    read, preview = split_preview(message, None)
    assert preview is not None and preview.data == IMAGE
    header = {"format": "jpeg", "width": 8, "height": 6, "image_width": 64, "image_height": 48}
    assert read == {"step": 2, "preview": header}
    assert preview.meta == read["preview"]


def test_a_binary_frames_image_is_the_preview_of_its_description():
    message = {"step": 2, "preview": describe_preview("webp", 8, 8, 64, 64)}
    assert split_preview(message, IMAGE) == (message, (message["preview"], IMAGE))


def test_a_preview_without_usable_bytes_is_no_preview():
    broken = {"step": 2, "preview": {"format": "jpeg", "width": 8, "height": 8, "data": "not base64!"}}
    read, preview = split_preview(broken, None)
    assert preview is None and read["preview"] == {"format": "jpeg", "width": 8, "height": 8}
    assert split_preview({"step": 2, "preview": describe_preview("jpeg", 8, 8, 64, 64)}, None)[1] is None
    assert split_preview("a log line", None) == ("a log line", None)


@pytest.mark.parametrize(
    ("description", "size"),
    [
        (describe_preview("jpeg", 32, 16, 256, 128), (256, 128)),  # latent2rgb: shown at the image's size
        (describe_preview("webp", 512, 320, 1024, 640), (1024, 640)),  # a decoded preview, shrunk to 512
        ({"format": "jpeg", "width": 64, "height": 48}, (64, 48)),  # no image size: as large as its image
        ({"width": 8, "height": 8, "image_width": 64.0, "image_height": 64}, (64, 64)),  # 64.0 is 64 in JSON
        ({"width": 8, "height": 8, "image_width": True, "image_height": 64}, (8, 8)),  # not a number
        ({"width": 8, "height": 8, "image_width": 0, "image_height": 64}, (8, 8)),
        ({"width": "8", "height": 8}, None),
        ({"format": "jpeg"}, None),
        ("a preview", None),
    ],
)
def test_the_size_a_preview_is_shown_at(description, size):
    assert preview_image_size(description) == size
