"""The options of a submit, declared once for `AsyncClient.submit` and `Client.submit`.

Both clients take `**options: Unpack[TaskOptions]`, so their parameter lists, defaults and docs
cannot drift apart, and type checkers and editors still see every name and type.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from typing import Any, TypedDict, Union

from PIL import Image

__all__ = ["ImageInput", "TaskOptions", "submit_body"]

ImageInput = Union[str, bytes, "os.PathLike[str]", Image.Image]
"""A picture to start from: a file's path (`Path`), its bytes, a PIL image, or a string the server
takes as is (a data URL, or the id `POST /v1/uploads` answered)."""
_PICTURES = ("image", "mask")


class TaskOptions(TypedDict, total=False):
    """The optional fields of `POST /v1/tasks`. Left out (or None): the server's default.

    The server's defaults and limits are in docs/protocol.md (1024x1024, 28 steps, ...).
    """

    negative_prompt: str | None
    """What the image should not show."""
    model: str | None
    """A model the server serves (`models()`), or one of its aliases; default: the server's first."""
    width: int | None
    """Pixels, a multiple of 16."""
    height: int | None
    """Pixels, a multiple of 16."""
    num_inference_steps: int | None
    """Denoising steps: more is slower and finer."""
    guidance_scale: float | None
    """How closely to follow the prompt."""
    seed: int | None
    """The same seed and parameters make the same image; default: a random one, recorded in the task."""
    num_images: int | None
    """Images made from the prompt, each with its own seed."""
    output_format: str | None
    """`png`, `jpeg` or `webp`."""
    preview_method: str | None
    """How step previews are made: `latent2rgb` (cheapest), `taesd`, `vae` or `none`."""
    preview_every: int | None
    """A preview every N steps."""
    preview_format: str | None
    """`jpeg` or `webp`."""
    scheduler: str | None
    """The sampler (docs/protocol.md lists the names)."""
    shift: float | None
    """The sigma shift; default: the model's own."""
    image: ImageInput | None
    """Image-to-image: the picture to start from (sent in the request as a data URL)."""
    mask: ImageInput | None
    """Inpainting: white is repainted, black kept; the image's size."""
    strength: float | None
    """With an image, 0-1: how much of the schedule runs (ceil(strength x steps) steps; 1.0 is
    text-to-image); default 0.6."""
    mask_blur: int | None
    """With a mask: its blur radius in pixels, softening the seam."""
    webhook: str | None
    """An http(s) URL the server POSTs the task's events to, signed (docs/webhooks.md;
    `verify_webhook` checks them); by default only the event that ends the task."""
    webhook_events: Sequence[str] | None
    """Which events the webhook gets (event types; `task_progress` at most once a second)."""
    extra_body: dict[str, Any] | None
    """Fields added to the request as they are (the server refuses unknown ones)."""


def submit_body(prompt: str, options: TaskOptions) -> dict[str, Any]:
    """The JSON body of a submit: the prompt and every option given, `extra_body` merged in.

    A name that is not an option raises TypeError, as a misspelt keyword argument would.
    """
    unknown = sorted(set(options) - TaskOptions.__optional_keys__)
    if unknown:
        raise TypeError(f"submit() got unexpected keyword argument(s): {', '.join(unknown)}")
    given: dict[str, Any] = {
        name: value for name, value in options.items() if name != "extra_body" and value is not None
    }
    if "webhook_events" in given:
        given["webhook_events"] = list(given["webhook_events"])
    for name in _PICTURES:
        if name in given:
            given[name] = picture_field(given[name])
    return {"prompt": prompt, **given, **(options.get("extra_body") or {})}


def picture_field(picture: ImageInput) -> str:
    """A picture as the body's `image`/`mask` field: a string as it is, anything else as a data URL
    (the server reads the type from the bytes)."""
    if isinstance(picture, str):
        return picture
    if isinstance(picture, Image.Image):
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        data, kind = buffer.getvalue(), "image/png"
    elif isinstance(picture, bytes):
        data, kind = picture, "application/octet-stream"
    else:
        with open(picture, "rb") as handle:
            data, kind = handle.read(), "application/octet-stream"
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"
