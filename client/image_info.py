"""The generation parameters every output image carries, written as AUTOMATIC1111 writes them.

Image tools (AUTOMATIC1111's "PNG Info", ComfyUI, Civitai, exiftool) read a picture's prompt and
settings from one text: the prompt, a `Negative prompt:` line, then `Key: value, ...` on the last
line. A PNG carries it in a text chunk named `parameters`; a JPEG or WebP in its EXIF UserComment.
The server writes it into every output (`save_options`); `read_info` reads it back from a file,
the bytes or a PIL image, and `latentcast info FILE` prints it.

    info = read_info("out.png")
    info.prompt, info.seed, info.steps
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

__all__ = ["GenerationInfo", "read_info"]

PNG_KEY = "parameters"
EXIF_IFD = 0x8769
USER_COMMENT = 0x9286
# EXIF's UserComment begins with 8 bytes naming its character code; "UNICODE" is UTF-16, big-endian
# as AUTOMATIC1111 writes it (piexif's helper), which is what its readers expect.
_UNICODE = b"UNICODE\0"
_NEGATIVE = "Negative prompt: "
# One `Key: value` of the last line; a value with a comma, colon or newline is a JSON string.
_SETTING = re.compile(r'\s*([A-Za-z][\w \-/]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


@dataclasses.dataclass(frozen=True, slots=True)
class GenerationInfo:
    """What made an image: enough to make it again on the same model."""

    prompt: str
    negative_prompt: str
    steps: int
    guidance_scale: float
    seed: int
    width: int
    height: int
    scheduler: str
    model: str
    shift: float | None = None  # None: the model's own
    batch_size: int = 1  # images made together: the same seed gives the same batch
    batch_position: int = 0  # which of them this is

    def to_text(self) -> str:
        """AUTOMATIC1111's `parameters` text."""
        settings: dict[str, Any] = {
            "Steps": self.steps,
            "Sampler": self.scheduler,
            "CFG scale": self.guidance_scale,
            "Seed": self.seed,
            "Size": f"{self.width}x{self.height}",
            "Model": self.model,
        }
        if self.shift is not None:
            settings["Shift"] = self.shift
        if self.batch_size > 1:
            settings["Batch size"], settings["Batch pos"] = self.batch_size, self.batch_position
        lines = [self.prompt]
        if self.negative_prompt:
            lines.append(_NEGATIVE + self.negative_prompt)
        lines.append(", ".join(f"{key}: {_quoted(str(value))}" for key, value in settings.items()))
        return "\n".join(lines)

    @classmethod
    def from_text(cls, text: str) -> GenerationInfo:
        """Parse AUTOMATIC1111's `parameters` text. ValueError when it is not one."""
        *described, last = text.split("\n")
        settings = {key: _unquoted(value) for key, value in _SETTING.findall(last)}
        try:
            width, height = (int(side) for side in settings["Size"].split("x"))
            negative_at = next((i for i, line in enumerate(described) if line.startswith(_NEGATIVE)), len(described))
            negative = "\n".join(described[negative_at:]).removeprefix(_NEGATIVE)
            return cls(
                prompt="\n".join(described[:negative_at]),
                negative_prompt=negative,
                steps=int(settings["Steps"]),
                guidance_scale=float(settings["CFG scale"]),
                seed=int(settings["Seed"]),
                width=width,
                height=height,
                scheduler=settings.get("Sampler", ""),
                model=settings.get("Model", ""),
                shift=float(settings["Shift"]) if "Shift" in settings else None,
                batch_size=int(settings.get("Batch size", 1)),
                batch_position=int(settings.get("Batch pos", 0)),
            )
        except (KeyError, ValueError) as missing:
            raise ValueError(f"not generation parameters (Steps, CFG scale, Seed and Size are needed): {missing}") from None

    def save_options(self, image_format: str) -> dict[str, Any]:
        """The keyword arguments of PIL's `Image.save` that embed this text, for `png`, `jpeg` or `webp`."""
        text = self.to_text()
        if image_format == "png":
            chunk = PngImagePlugin.PngInfo()
            chunk.add_text(PNG_KEY, text)  # iTXt (UTF-8) when the text is not Latin-1
            return {"pnginfo": chunk}
        exif = Image.Exif()
        exif.get_ifd(EXIF_IFD)[USER_COMMENT] = _UNICODE + text.encode("utf-16-be")
        return {"exif": exif}


def read_info(source: str | Path | bytes | Image.Image) -> GenerationInfo | None:
    """The parameters an image carries (a path, its bytes, or an open PIL image); None when it has none."""
    if isinstance(source, Image.Image):
        return _info_of(source)
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        return _info_of(image)


def _info_of(image: Image.Image) -> GenerationInfo | None:
    text = image.info.get(PNG_KEY)
    if not isinstance(text, str):
        comment = image.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT)
        if not isinstance(comment, bytes) or not comment.startswith(_UNICODE):
            return None
        text = comment.removeprefix(_UNICODE).decode("utf-16-be", errors="replace")
    try:
        return GenerationInfo.from_text(text)
    except ValueError:
        return None


def _quoted(value: str) -> str:
    plain = value == value.strip() and not any(c in value for c in ',:\n"')
    return value if plain else json.dumps(value, ensure_ascii=False)


def _unquoted(value: str) -> str:
    value = value.strip()
    return json.loads(value) if value.startswith('"') else value
