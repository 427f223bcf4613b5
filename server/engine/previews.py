"""Per-step previews of the picture forming, computed in the worker thread from the step callback.

A preview shows the denoised estimate x0, not the noisy latent the scheduler carries: early in a
flow-matching run the latent is mostly noise, while x0 already shows the composition. Everything
here is on the denoising hot path, so the default method (`latent2rgb`) is a single small matmul
on the latent's own device, one uint8 copy to the CPU, and a fast JPEG encode.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

# (each from its own module: mypy takes diffusers' top-level names for its no-torch placeholders)
from diffusers.models.autoencoders.autoencoder_tiny import AutoencoderTiny
from PIL import Image

from latentcast.server.engine.model_settings import SD3_LATENT_RGB_BIAS, SD3_LATENT_RGB_FACTORS, ModelSettings
from latentcast.wire import PREVIEW_FORMATS, PREVIEW_METHODS

MAX_PREVIEW_SIDE = 512


def denoised_estimate(
    prev_latents: torch.Tensor, latents: torch.Tensor, sigma: float, sigma_next: float
) -> torch.Tensor:
    """The flow-matching estimate of the clean latent after an Euler step from `sigma` to `sigma_next`.

    The step was `x[i+1] = x[i] + (sigma_next - sigma) * v`, so `v = (x[i+1] - x[i]) / (sigma_next -
    sigma)` and `x0 = x[i+1] - sigma_next * v`. With the pipeline's callback at step `i`, the sigmas
    are `scheduler.sigmas[i]` and `scheduler.sigmas[i + 1]`. The same formula written as one lerp
    between the two latents, `x0 = x[i] + (x[i+1] - x[i]) * sigma / (sigma - sigma_next)`, costs a
    single fused op. Computed in float32: with fp16 latents the difference of two close tensors
    divided by a small step loses most of its bits.
    """
    if sigma == sigma_next:
        raise ValueError(f"sigma and sigma_next are both {sigma}: the step has no direction to follow")
    return torch.lerp(prev_latents.float(), latents.float(), sigma / (sigma - sigma_next))


class Previewer(Protocol):
    def __call__(self, x0: torch.Tensor) -> list[Image.Image]:
        """One RGB image per batch item of the model-space latent `x0` (B, C, h, w), at the
        resolution the method carries and at most 512 px a side."""
        ...


def fit_size(width: int, height: int, max_side: int = MAX_PREVIEW_SIDE) -> tuple[int, int]:
    """`(width, height)` scaled down, aspect kept, so that neither side exceeds `max_side`; never up."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def shrink_to_fit(image: Image.Image, max_side: int = MAX_PREVIEW_SIDE) -> Image.Image:
    """`image` itself if it fits within `max_side`, else a smaller copy with the same aspect."""
    size = fit_size(image.width, image.height, max_side)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.BILINEAR)


class Latent2RGB:
    """A per-pixel linear map from SD3's 16 latent channels to RGB: crude colours, almost free.

    The picture stays at latent resolution (one pixel per latent cell: 32x32 for a 256 px image,
    128x128 for 1024 px). Enlarging it here would add no detail, only bytes on every subscriber's
    socket; the pages and `Preview.image(enlarged=True)` scale it smoothly to the image's size.
    """

    def __init__(
        self,
        factors: Sequence[Sequence[float]] = SD3_LATENT_RGB_FACTORS,
        bias: Sequence[float] = SD3_LATENT_RGB_BIAS,
    ) -> None:
        # Folded in once: [-1, 1] -> [0, 255], plus 0.5 so the uint8 cast (which truncates) rounds.
        self._weight = torch.tensor(factors).T.contiguous() * 127.5  # (3, 16)
        self._bias = (torch.tensor(bias)[:, None] + 1.0) * 127.5 + 0.5  # (3, 1)

    def __call__(self, x0: torch.Tensor) -> list[Image.Image]:
        batch, channels, height, width = x0.shape
        if channels != self._weight.shape[1]:
            raise ValueError(f"latent2rgb maps SD3's {self._weight.shape[1]} latent channels, got {channels}")
        if self._weight.device != x0.device:
            self._weight, self._bias = self._weight.to(x0.device), self._bias.to(x0.device)
        # (3, 16) @ (B, 16, h*w): the channel axis is already the contiguous reduction axis here, which
        # makes this about 1.4x faster than a linear over channels-last.
        rgb = torch.matmul(self._weight, x0.float().flatten(2)).add_(self._bias)
        pixels = rgb.clamp_(0, 255).to(torch.uint8).view(batch, 3, height, width)
        return _to_images(pixels)


class VaePreview:
    """The pipeline's own full VAE decode: exact, and costly (seconds a step on a CPU at 1024 px)."""

    def __init__(self, pipe: Any, max_side: int = MAX_PREVIEW_SIDE) -> None:
        self.vae = pipe.vae
        self.max_side = max_side

    def __call__(self, x0: torch.Tensor) -> list[Image.Image]:
        config = self.vae.config
        # The inverse of the VAE's encode-side `(z - shift) * scale`, exactly as the pipeline decodes.
        latents = (x0 / config.scaling_factor + config.shift_factor).to(self.vae.dtype)
        with torch.no_grad():
            decoded = self.vae.decode(latents, return_dict=False)[0]
        return [shrink_to_fit(image, self.max_side) for image in _to_images(_signed_to_uint8(decoded))]


class TaesdPreview:
    """A tiny distilled decoder (AutoencoderTiny, e.g. madebyollin/taesd3): near-real pictures, cheaply.

    Loaded only from a local folder: nothing is fetched while serving.
    """

    def __init__(
        self,
        path: Path,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        max_side: int = MAX_PREVIEW_SIDE,
    ) -> None:
        self.vae = AutoencoderTiny.from_pretrained(str(path), dtype=dtype).to(device).eval()
        channels = self.vae.config.latent_channels
        if channels != len(SD3_LATENT_RGB_FACTORS):
            raise ValueError(
                f"the tiny autoencoder at {path} has {channels} latent channels; SD3 needs "
                f"{len(SD3_LATENT_RGB_FACTORS)} (use taesd3)"
            )
        self.max_side = max_side

    def __call__(self, x0: torch.Tensor) -> list[Image.Image]:
        config = self.vae.config
        # Unscaled the way a pipeline unscales for whichever VAE it holds: taesd3 ships scaling 1.0
        # and shift 0.0 because its decoder takes the model-space latents as they are.
        latents = (x0 / config.scaling_factor + config.shift_factor).to(self.vae.dtype)
        with torch.no_grad():
            decoded = self.vae.decode(latents, return_dict=False)[0]
        return [shrink_to_fit(image, self.max_side) for image in _to_images(_signed_to_uint8(decoded))]


def make_previewer(
    method: str, pipe: Any, taesd_path: Path | None, settings: ModelSettings | None = None
) -> Previewer | None:
    """The previewer for `method` (one of PREVIEW_METHODS) on `pipe`'s device; None for "none".
    `settings`: the model folder's own (its latent -> RGB factors); None: SD3's."""
    if method == "latent2rgb":
        if settings is None:
            return Latent2RGB()
        return Latent2RGB(factors=settings.latent_rgb_factors, bias=settings.latent_rgb_bias)
    if method == "vae":
        return VaePreview(pipe)
    if method == "taesd":
        if taesd_path is None:
            raise ValueError(
                "preview method 'taesd' needs the folder of a 16-channel AutoencoderTiny (such as "
                "madebyollin/taesd3, saved locally); none was given"
            )
        return TaesdPreview(taesd_path, device=pipe.vae.device, dtype=pipe.vae.dtype)
    if method == "none":
        return None
    raise ValueError(f"unknown preview method {method!r}; use one of {', '.join(PREVIEW_METHODS)}")


def encode_image(img: Image.Image, fmt: str, quality: int = 80) -> bytes:
    """`img` as JPEG or WebP bytes, with the encoder's fastest settings: previews are seen once.

    JPEG is the cheap one (under a millisecond for a typical 512x512 preview); WebP, even at its
    fastest method, costs about ten times more for a file half the size.
    """
    buffer = io.BytesIO()
    if fmt == "jpeg":
        img.save(buffer, format="JPEG", quality=quality)
    elif fmt == "webp":
        img.save(buffer, format="WEBP", quality=quality, method=0)
    else:
        raise ValueError(f"unknown preview format {fmt!r}; use one of {', '.join(PREVIEW_FORMATS)}")
    return buffer.getvalue()


def _signed_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Decoder output in [-1, 1] to uint8 [0, 255], rounded (the +128 is 127.5 + 0.5 for rounding)."""
    return images.float().mul_(127.5).add_(128.0).clamp_(0, 255).to(torch.uint8)


def _to_images(pixels: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) uint8 on any device to PIL images, with one device-to-host copy of the whole batch."""
    array = pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    return [Image.fromarray(item) for item in array]
