"""Previews: the denoised-estimate math, each method's image sizes, and the encoders."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny, FlowMatchEulerDiscreteScheduler
from PIL import Image

from latentcast.server.engine.loader import LoadedModel
from latentcast.server.engine.model_settings import SD3_LATENT_RGB_BIAS, SD3_LATENT_RGB_FACTORS
from latentcast.server.engine.previews import (
    Latent2RGB,
    TaesdPreview,
    VaePreview,
    denoised_estimate,
    encode_image,
    fit_size,
    make_previewer,
    shrink_to_fit,
)


def _latents(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 16, height, width, generator=torch.Generator().manual_seed(seed))


def _save_tiny_autoencoder(folder: Path, latent_channels: int = 16) -> Path:
    torch.manual_seed(0)
    AutoencoderTiny(
        latent_channels=latent_channels,
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
    ).save_pretrained(folder)
    return folder


def _assert_preview_size(image: Image.Image, width: int, height: int) -> None:
    """At most 512 px a side, never larger than the image, aspect kept to within rounding."""
    assert image.mode == "RGB"
    assert max(image.size) <= 512
    assert image.width <= width and image.height <= height
    assert abs(image.width / image.height - width / height) < 2 / min(image.size)
    if max(width, height) > 512:
        assert max(image.size) == 512


# --- denoised estimate ---------------------------------------------------------------------------


def test_denoised_estimate_recovers_x0_on_a_straight_flow() -> None:
    # Flow matching moves on the line x(sigma) = (1 - sigma) * x0 + sigma * noise.
    x0, noise = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.3, 0.7, -1.1])
    at = lambda sigma: (1 - sigma) * x0 + sigma * noise  # noqa: E731
    assert torch.allclose(denoised_estimate(at(0.8), at(0.6), 0.8, 0.6), x0, atol=1e-6)
    assert torch.allclose(denoised_estimate(at(1.0), at(0.95), 1.0, 0.95), x0, atol=1e-5)


def test_denoised_estimate_by_hand() -> None:
    # v = (3 - 1) / (0.5 - 1.0) = -4; x0 = 3 - 0.5 * -4 = 5
    assert denoised_estimate(torch.tensor([1.0]), torch.tensor([3.0]), 1.0, 0.5).item() == pytest.approx(5.0)


def test_denoised_estimate_matches_the_scheduler_step() -> None:
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(8)
    sample, velocity = _latents(1, 4, 4, seed=1), _latents(1, 4, 4, seed=2)
    stepped = scheduler.step(velocity, scheduler.timesteps[0], sample, return_dict=False)[0]
    sigma, sigma_next = float(scheduler.sigmas[0]), float(scheduler.sigmas[1])
    expected = sample - sigma * velocity  # the model's own x0 prediction
    assert torch.allclose(denoised_estimate(sample, stepped, sigma, sigma_next), expected, atol=1e-4)


def test_denoised_estimate_at_the_last_step_is_the_result() -> None:
    previous, final = _latents(1, 4, 4, seed=1), _latents(1, 4, 4, seed=2)
    assert torch.allclose(denoised_estimate(previous, final, 0.1, 0.0), final)


def test_denoised_estimate_is_float32_and_refuses_a_null_step() -> None:
    half = _latents(1, 2, 2).half()
    assert denoised_estimate(half, half, 0.5, 0.4).dtype == torch.float32
    with pytest.raises(ValueError):
        denoised_estimate(half, half, 0.5, 0.5)


# --- sizes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [((64, 64), (64, 64)), ((512, 512), (512, 512)), ((1024, 1024), (512, 512)), ((1024, 768), (512, 384)),
     ((640, 1536), (213, 512)), ((5000, 8), (512, 1))],
)
def test_fit_size(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert fit_size(*size) == expected


def test_shrink_to_fit_keeps_small_images() -> None:
    image = Image.new("RGB", (300, 200))
    assert shrink_to_fit(image) is image
    assert shrink_to_fit(Image.new("RGB", (1024, 512))).size == (512, 256)


# --- latent2rgb ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(8, 8), (8, 12), (128, 128), (128, 96), (40, 192), (256, 256)])
def test_latent2rgb_pictures_are_at_latent_size(height: int, width: int) -> None:
    images = Latent2RGB()(_latents(2, height, width))
    assert [image.size for image in images] == [(width, height)] * 2  # one pixel per latent cell
    assert {image.mode for image in images} == {"RGB"}


def test_latent2rgb_colours() -> None:
    latents = torch.zeros(1, 16, 2, 2)
    latents[0, 0, 0, 0] = 1.0  # one pixel lit in channel 0 only
    image = Latent2RGB()(latents)[0]
    bias = np.array(SD3_LATENT_RGB_BIAS)
    expected_black = np.round((bias + 1) * 127.5)
    expected_lit = np.round((bias + np.array(SD3_LATENT_RGB_FACTORS[0]) + 1) * 127.5)
    pixels = np.asarray(image).astype(float)
    assert np.abs(pixels[1, 1] - expected_black).max() <= 1
    assert np.abs(pixels[0, 0] - expected_lit).max() <= 1


def test_latent2rgb_refuses_other_latent_formats() -> None:
    with pytest.raises(ValueError, match="16"):
        Latent2RGB()(torch.zeros(1, 4, 8, 8))


# --- vae and taesd -------------------------------------------------------------------------------


def test_vae_preview_sizes(tiny: LoadedModel) -> None:
    preview = VaePreview(tiny.pipe)
    images = preview(_latents(2, 8, 8))
    assert [image.size for image in images] == [(64, 64), (64, 64)]
    (wide,) = preview(_latents(1, 40, 72))
    _assert_preview_size(wide, 576, 320)


def test_vae_preview_of_the_final_latents_is_the_final_image(tiny: LoadedModel) -> None:
    pipe = tiny.pipe
    seen: dict[str, torch.Tensor] = {}

    def keep_latents(pipe_: object, i: int, t: object, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        seen["latents"] = tensors["latents"]
        return {}

    image = pipe(
        "a red kite",
        num_inference_steps=3,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(5),
        callback_on_step_end=keep_latents,
    ).images[0]
    (preview,) = VaePreview(pipe)(seen["latents"])
    difference = np.abs(np.asarray(preview).astype(int) - np.asarray(image).astype(int))
    assert difference.max() <= 1  # rounding may differ by one level


def test_taesd_preview_from_a_local_folder(tmp_path: Path) -> None:
    preview = TaesdPreview(_save_tiny_autoencoder(tmp_path / "taesd3"))
    images = preview(_latents(2, 8, 8))
    assert [image.size for image in images] == [(64, 64), (64, 64)]
    (tall,) = preview(_latents(1, 96, 64))
    _assert_preview_size(tall, 512, 768)


def test_taesd_must_be_for_sixteen_channel_latents(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="taesd3"):
        TaesdPreview(_save_tiny_autoencoder(tmp_path / "taesd", latent_channels=4))


# --- make_previewer ------------------------------------------------------------------------------


def test_make_previewer_methods(tiny: LoadedModel, tmp_path: Path) -> None:
    assert isinstance(make_previewer("latent2rgb", tiny.pipe, None), Latent2RGB)
    assert isinstance(make_previewer("vae", tiny.pipe, None), VaePreview)
    taesd = make_previewer("taesd", tiny.pipe, _save_tiny_autoencoder(tmp_path / "taesd3"))
    assert isinstance(taesd, TaesdPreview)
    assert make_previewer("none", tiny.pipe, None) is None


def test_make_previewer_errors(tiny: LoadedModel) -> None:
    with pytest.raises(ValueError, match="'taesd' needs"):
        make_previewer("taesd", tiny.pipe, None)
    with pytest.raises(ValueError, match="latent2rgb"):
        make_previewer("sharpest", tiny.pipe, None)


# --- encoding ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "pil_format"), [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_encode_image(fmt: str, pil_format: str) -> None:
    (image,) = Latent2RGB()(_latents(1, 48, 64))
    data = encode_image(image, fmt)
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == pil_format
    assert decoded.size == image.size == (64, 48)


def test_encode_image_refuses_other_formats() -> None:
    with pytest.raises(ValueError, match="jpeg, webp"):
        encode_image(Image.new("RGB", (8, 8)), "png")
