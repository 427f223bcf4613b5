"""A task's input image and mask: read, checked and fitted to the task's size, with no I/O.

Whatever door a picture comes in by (a multipart file, a data URL, an upload's id), its bytes
come here. Pillow opens any format it knows, but only after the header's declared size has been
checked: a decompression bomb is a small file that declares a huge picture, and is refused
before a pixel of it is decoded. What the task keeps is the picture as it will be used: fitted to
the task's width and height by the "cover" rule (scaled, keeping its aspect, until it covers the
whole size, then centre-cropped), as PNG: RGB for the image, greyscale for the mask (white is
repainted, black kept).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import re
import warnings

from PIL import Image, ImageOps

# The most pixels an input's header may declare (a 4096 x 4096 picture); more is refused unread.
MAX_INPUT_PIXELS = 4096 * 4096
INPUT_NAMES = ("image", "mask")
_ORIENTATION = 0x0112  # the EXIF tag
# `POST /v1/uploads` answers ids of this form; anything else in `image`/`mask` that is not a data
# URL is neither, and is refused (a URL in particular: the server fetches nothing).
_UPLOAD_ID = re.compile(r"^up_[0-9a-f]{32}$")
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?);base64,(?P<data>.*)$", re.DOTALL)


class InputRejected(ValueError):
    """An input the task cannot use, with the field it came in and the rule it broke (a 400)."""

    def __init__(self, field: str, rule: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.rule = rule


@dataclasses.dataclass(frozen=True, slots=True)
class Picture:
    """An input read and checked: its bytes as sent, the decoded picture and what it was."""

    data: bytes
    image: Image.Image
    content_type: str


@dataclasses.dataclass(frozen=True, slots=True)
class TaskInputs:
    """What a task keeps: its image and, for inpainting, its mask, as PNG at the task's size."""

    image: bytes
    mask: bytes | None

    def named(self) -> dict[str, bytes]:
        return {"image": self.image} | ({"mask": self.mask} if self.mask is not None else {})


def is_upload_id(text: str) -> bool:
    return bool(_UPLOAD_ID.match(text))


def data_url_bytes(field: str, text: str) -> bytes:
    """The bytes of a base64 data URL (`data:image/png;base64,...`)."""
    found = _DATA_URL.match(text)
    if found is None:
        raise InputRejected(
            field, "image_source", "must be a base64 data URL (data:image/png;base64,...) or an upload id "
            "from POST /v1/uploads; the server fetches no URL",
        )
    try:
        return base64.b64decode(found.group("data"), validate=True)
    except (binascii.Error, ValueError):
        raise InputRejected(field, "base64", "the data URL's base64 is not valid") from None


def read_picture(field: str, data: bytes, *, max_pixels: int = MAX_INPUT_PIXELS) -> Picture:
    """`data` decoded, or `InputRejected`: not an image Pillow reads, or declaring more than
    `max_pixels` pixels (checked from the header, before decoding)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data))  # reads the header only
            width, height = opened.size
            if width * height > max_pixels:
                raise InputRejected(
                    field, "max_pixels", f"declares {width}x{height} pixels; at most {max_pixels} are read"
                )
            opened.load()
    except InputRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputRejected(field, "max_pixels", f"declares more than {max_pixels} pixels") from None
    except Image.UnidentifiedImageError:
        raise InputRejected(field, "not_an_image", "is not an image Pillow can read") from None
    except Exception as failure:  # Pillow raises many kinds for a file it cannot read to its end
        raise InputRejected(field, "not_an_image", f"is not an image Pillow can read ({failure})") from None
    fmt = opened.format or "PNG"
    return Picture(data, opened, Image.MIME.get(fmt, "application/octet-stream"))


def fit(picture: Image.Image, width: int, height: int) -> Image.Image:
    """The "cover" rule: scaled (Lanczos), keeping its aspect, to cover `width` x `height`, then
    centre-cropped to it. EXIF orientation is applied first, as a viewer shows the picture."""
    upright = ImageOps.exif_transpose(picture)
    return ImageOps.fit(upright, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def prepare(image: Picture, mask: Picture | None, width: int, height: int) -> TaskInputs:
    """The task's inputs at its size; a mask must have its image's size (as drawn on it)."""
    if mask is not None and mask.image.size != image.image.size:
        raise InputRejected(
            "mask", "mask_size",
            f"is {mask.image.width}x{mask.image.height} but the image is {image.image.width}x{image.image.height}; "
            "a mask must have its image's size",
        )
    # A transparent image is laid on white, as a viewer shows it; a transparent mask on black:
    # what is not painted is kept.
    fitted = fit(_flattened(image.image, (255, 255, 255)), width, height)
    kept_mask = None
    if mask is not None:
        kept_mask = _png(fit(_flattened(mask.image, (0, 0, 0)).convert("L"), width, height))
    return TaskInputs(_png(fitted), kept_mask)


def _flattened(picture: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """RGB, a transparent picture laid on `background`."""
    if picture.mode in ("RGBA", "LA", "PA") or (picture.mode == "P" and "transparency" in picture.info):
        rgba = picture.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return picture.convert("RGB")


def _png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def natural_size(picture: Image.Image, max_pixels: int, *, multiple: int = 8, largest: int = 2048) -> tuple[int, int]:
    """The size a task takes from its image when it names none: the image's own, scaled down (keeping
    its aspect) to at most `largest` a side and `max_pixels` in all, each side a multiple of `multiple`."""
    width, height = picture.size
    if picture.getexif().get(_ORIENTATION) in (5, 6, 7, 8):  # turned a quarter: shown the other way round
        width, height = height, width
    scale = min(1.0, largest / max(width, height), (max_pixels / (width * height)) ** 0.5)
    return tuple(max(64, int(side * scale) // multiple * multiple) for side in (width, height))  # type: ignore[return-value]


def openai_mask(data: bytes) -> bytes:
    """An OpenAI-style mask (its transparent pixels, alpha below one half, are repainted) as this
    server's (white is repainted), PNG."""
    picture = read_picture("mask", data).image
    if "A" not in picture.getbands() and "transparency" not in picture.info:
        raise InputRejected("mask", "mask_alpha", "must have transparency: its transparent pixels are repainted")
    alpha = picture.convert("RGBA").getchannel("A")
    return _png(alpha.point(lambda value: 255 if value < 128 else 0))
