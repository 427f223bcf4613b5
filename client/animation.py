"""An animated WebP or GIF of the denoising: the preview frames in order, then the final image."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

FORMATS = {".webp": "WEBP", ".gif": "GIF"}
MAX_SIDE = 512  # an animation larger than the server's largest previews would show no more detail


def animation_format(path: str | Path) -> str:
    """The Pillow format for an animation path; ValueError for anything but .webp and .gif."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"an animation must be a .webp or .gif file, not {str(path)!r}")
    return FORMATS[suffix]


def write_animation(
    path: str | Path,
    frames: Sequence[bytes],
    final: bytes | None = None,
    *,
    frame_ms: int = 120,
    hold_ms: int = 1500,
) -> Path:
    """Write `frames` (encoded images, e.g. preview bytes) as an animation looping forever.

    `final`, when given, is appended and shown for `hold_ms`. Every image is scaled smoothly to the
    largest one's size (at most `MAX_SIDE` px a side): previews that travel at latent size (an
    eighth of the image a side) are enlarged to the final image's.
    """
    from PIL import Image

    path = Path(path)
    kind = animation_format(path)
    images = [Image.open(io.BytesIO(data)).convert("RGB") for data in frames]
    if final is not None:
        last = Image.open(io.BytesIO(final)).convert("RGB")
        images.append(last)
    if not images:
        raise ValueError("no frames to animate")
    largest = max((im.size for im in images), key=lambda size: size[0] * size[1])
    scale = min(1.0, MAX_SIDE / max(largest))
    size = (max(1, round(largest[0] * scale)), max(1, round(largest[1] * scale)))
    images = [im if im.size == size else im.resize(size, Image.Resampling.BICUBIC) for im in images]
    durations = [frame_ms] * len(images)
    durations[-1] = hold_ms if final is not None else frame_ms
    options: dict[str, object] = {"save_all": True, "append_images": images[1:], "duration": durations, "loop": 0}
    if kind == "WEBP":
        options["quality"] = 90
    else:
        options["disposal"] = 1
    partial = path.with_name(f".{path.name}.part")
    images[0].save(partial, format=kind, **options)
    partial.replace(path)
    return path
