"""The pure rules of input pictures (server.tasks.input_images, params.image_steps): what is read,
what is refused before decoding, how a picture is fitted, and how many steps a strength runs."""

from __future__ import annotations

import base64
import io

import pytest
from latentcast.server.tasks.input_images import (
    InputRejected, data_url_bytes, fit, is_upload_id, natural_size, openai_mask, prepare, read_picture,
)
from latentcast.server.tasks.params import image_steps
from PIL import Image

from tests.core.test_image_input import bomb


def png(size: tuple[int, int], colour: object = "red", mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_bomb_is_refused_from_its_header_before_any_pixel_is_decoded() -> None:
    data = bomb(100_000, 100_000)
    assert len(data) < 100
    with pytest.raises(InputRejected) as refused:
        read_picture("image", data)
    assert (refused.value.field, refused.value.rule) == ("image", "max_pixels")
    with pytest.raises(InputRejected) as refused:  # past our limit, within Pillow's own (which it stops at first)
        read_picture("image", bomb(5000, 5000))
    assert refused.value.rule == "max_pixels" and "5000x5000" in str(refused.value)
    assert read_picture("image", png((64, 64))).content_type == "image/png"


def test_any_format_pillow_reads_is_taken() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), "blue").save(buffer, format="WEBP")
    picture = read_picture("image", buffer.getvalue())
    assert picture.image.size == (40, 30) and picture.content_type == "image/webp"


def test_data_urls_and_upload_ids() -> None:
    assert data_url_bytes("image", "data:image/png;base64," + base64.b64encode(b"abc").decode()) == b"abc"
    assert data_url_bytes("image", "data:;base64,YWJj") == b"abc"
    for text in ("https://example.com/a.png", "file:///etc/passwd", "YWJj"):
        with pytest.raises(InputRejected) as refused:
            data_url_bytes("mask", text)
        assert (refused.value.field, refused.value.rule) == ("mask", "image_source")
    assert is_upload_id("up_" + "a" * 32) and not is_upload_id("up_" + "a" * 31) and not is_upload_id("../x")


def test_the_cover_rule_scales_to_cover_then_crops_the_centre() -> None:
    wide = Image.new("RGB", (200, 100), "black")
    wide.paste((255, 0, 0), (50, 0, 150, 100))  # a red middle half
    fitted = fit(wide, 100, 100)
    assert fitted.size == (100, 100)
    assert fitted.getpixel((50, 50)) == (255, 0, 0) and fitted.getpixel((2, 50)) == (255, 0, 0)


def test_a_mask_must_have_its_images_size_and_is_kept_as_greyscale() -> None:
    image, mask = read_picture("image", png((64, 64))), read_picture("mask", png((32, 32), "white"))
    with pytest.raises(InputRejected) as refused:
        prepare(image, mask, 64, 64)
    assert (refused.value.field, refused.value.rule) == ("mask", "mask_size")
    transparent = read_picture("mask", png((64, 64), (255, 255, 255, 0), "RGBA"))
    kept = prepare(image, transparent, 32, 32)
    assert Image.open(io.BytesIO(kept.image)).size == (32, 32)
    assert Image.open(io.BytesIO(kept.mask)).getpixel((3, 3)) == 0  # unpainted (transparent) is kept


def test_an_openai_mask_repaints_its_transparent_pixels() -> None:
    mask = Image.new("RGBA", (8, 8), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 4, 8))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    converted = Image.open(io.BytesIO(openai_mask(buffer.getvalue())))
    assert converted.getpixel((1, 1)) == 255 and converted.getpixel((6, 1)) == 0
    with pytest.raises(InputRejected) as refused:
        openai_mask(png((8, 8)))
    assert refused.value.rule == "mask_alpha"


def test_natural_size_rounds_down_to_eight_within_the_limits() -> None:
    assert natural_size(Image.new("RGB", (100, 70)), 2048 * 2048) == (96, 64)
    assert natural_size(Image.new("RGB", (4000, 2000)), 2048 * 2048) == (2048, 1024)
    assert natural_size(Image.new("RGB", (1000, 1000)), 512 * 512) == (512, 512)


@pytest.mark.parametrize(
    ("strength", "steps", "run"), [(1.0, 28, 28), (0.6, 20, 12), (0.63, 20, 13), (0.5, 8, 4), (0.0, 8, 1), (0.01, 28, 1)]
)
def test_a_strength_runs_the_last_ceil_strength_x_steps(strength: float, steps: int, run: int) -> None:
    assert image_steps(strength, steps) == run
