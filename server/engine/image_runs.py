"""What one run denoises from, and with which of diffusers' SD3 pipelines: text-to-image from noise,
image-to-image from an input picture, inpainting from a picture and a mask.

The image pipelines are built with `from_pipe` from the loaded text-to-image one: they share its
modules (no second copy of the weights) and its scheduler, as configured for the task. The
runner drives whichever it gets the same way, with the same step callback.

The picture's latents are encoded here, deterministically (the mean of the VAE's distribution), and
handed to the pipeline in place of the picture, which diffusers then uses as is. So no draw from
the task's generator goes to the encoding, and the pipeline's first draw, the noise, is the one a
text-to-image run of the same seed draws: at strength 1.0 (sigma 1: all noise) an image task is
exactly that text-to-image run.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

# (each from its own module: mypy takes diffusers' top-level names for its no-torch placeholders)
from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3_img2img import StableDiffusion3Img2ImgPipeline
from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3_inpaint import StableDiffusion3InpaintPipeline
from PIL import Image, ImageFilter

from latentcast.server.tasks.params import TaskParams, image_steps


@dataclasses.dataclass(frozen=True, slots=True)
class StartLatents:
    """What denoising starts from: pure noise, or an input picture's latents noised to the first
    sigma the strength runs from (flow matching: sigma x noise + (1 - sigma) x picture)."""

    noise: torch.Tensor
    picture: torch.Tensor | None = None

    def at(self, sigma: float) -> torch.Tensor:
        if self.picture is None:
            return self.noise
        return sigma * self.noise + (1.0 - sigma) * self.picture


@dataclasses.dataclass(frozen=True, slots=True)
class RunPlan:
    pipeline: Any
    arguments: dict[str, Any]  # for the pipeline's call, beyond what every run passes
    steps: int  # the steps it runs
    start: StartLatents
    laid_over: Callable[[Image.Image], Image.Image]  # an output, finished (inpainting: over its input)


def plan_run(
    pipe: Any,
    params: TaskParams,
    inputs: Mapping[str, bytes] | None,
    padded: tuple[int, int],
    noise: torch.Tensor,
    seed: int,
) -> RunPlan:
    """The run a task asks for; `noise` is the seed's first draw at the `padded` (width, height)."""
    if not inputs or "image" not in inputs:
        return RunPlan(pipe, {"latents": noise}, params.num_inference_steps, StartLatents(noise), _as_is)
    steps = image_steps(params.strength if params.strength is not None else 1.0, params.num_inference_steps)
    picture = _opened(inputs["image"], "RGB")
    latents = _encoded(pipe, _padded(picture, padded))
    arguments: dict[str, Any] = {
        "image": latents,
        "strength": _pipeline_strength(steps, params.num_inference_steps),
        "generator": torch.Generator(device="cpu").manual_seed(seed),  # its first draw is `noise`
    }
    start = StartLatents(noise, latents)
    if "mask" not in inputs:
        return RunPlan(StableDiffusion3Img2ImgPipeline.from_pipe(pipe), arguments, steps, start, _as_is)
    mask = _opened(inputs["mask"], "L")
    if params.mask_blur:
        mask = mask.filter(ImageFilter.GaussianBlur(params.mask_blur))
    # The pipeline keeps the latents outside the mask (binarized at one half, at latent resolution);
    # the decoded result is then laid over the input through the blurred mask, so that what is not
    # masked is the input's own pixels and the seam is as soft as `mask_blur` says.
    arguments |= {"mask_image": _padded(mask, padded), "masked_image_latents": latents}

    def laid_over(result: Image.Image) -> Image.Image:
        return Image.composite(result, picture, mask)

    return RunPlan(StableDiffusion3InpaintPipeline.from_pipe(pipe), arguments, steps, start, laid_over)


def _as_is(image: Image.Image) -> Image.Image:
    return image


def _pipeline_strength(steps: int, total: int) -> float:
    """The strength at which diffusers runs exactly `steps` of `total`: it runs the last
    `total - int(total - strength * total)`, so a strength half a step short of `steps` is
    immune to rounding either way (1.0 stays 1.0: the inpaint pipeline starts from pure noise then)."""
    return 1.0 if steps == total else (steps - 0.5) / total


def _opened(data: bytes, mode: str) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture.convert(mode)


def _padded(picture: Image.Image, padded: tuple[int, int]) -> Image.Image:
    """`picture` at the centre of the `padded` size the pipeline runs at, its edges repeated out to
    it: the runner crops the same centre out of the result (runner._cropped)."""
    if picture.size == padded:
        return picture
    pixels = np.asarray(picture)
    left, top = (padded[0] - picture.width) // 2, (padded[1] - picture.height) // 2
    right, bottom = padded[0] - picture.width - left, padded[1] - picture.height - top
    spread = ((top, bottom), (left, right)) + (((0, 0),) if pixels.ndim == 3 else ())
    return Image.fromarray(np.pad(pixels, spread, mode="edge"))


def _encoded(pipe: Any, picture: Image.Image) -> torch.Tensor:
    """The picture's latents as the pipeline's own encoding scales them, from the VAE's mean."""
    pixels = pipe.image_processor.preprocess(picture, height=picture.height, width=picture.width)
    vae = pipe.vae
    with torch.inference_mode():
        encoded = vae.encode(pixels.to(device=vae.device, dtype=vae.dtype)).latent_dist.mode()
    return (encoded - vae.config.shift_factor) * vae.config.scaling_factor
