"""Train an SD3 pipeline that draws, on CPU from the synthetic scenes (docs/builtin-model.md).

    python -m latentcast.server.training.train --out FOLDER

Seeded and deterministic on one machine (torch's CPU kernels are). Three stages, in the order the
model needs them:

1. the 16-channel AutoencoderKL learns to reconstruct scenes (L1 + MSE, a small KL term so its
   latents stay smooth enough to diffuse); its latents' mean and spread become the VAE's
   `shift_factor` and `scaling_factor`, so the transformer sees unit-variance latents as in SD3;
2. the SD3Transformer2DModel learns flow matching (x_t = (1 - s) x0 + s e, target e - x0, s drawn
   half logit-normal and half evenly, then shifted by the scheduler's shift) on latents cached
   once at 256 and 512 px, together with the pipeline's own text encoders (CLIP x2 and T5), with
   10 % of captions dropped to "" for classifier-free guidance; the saved weights are an
   exponential moving average, which denoises far better than the last step's;
3. the `latent2rgb` preview factors are fitted by least squares from latents to the decoded
   images downscaled to the latents' size, and written beside the weights.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import random
import re
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, SD3Transformer2DModel, StableDiffusion3Pipeline

from latentcast.server.engine.builtin import SCHEDULER_SHIFT, Sizes, build_pipeline
from latentcast.server.engine.model_settings import ModelSettings
from latentcast.server.training import scenes



def caption_words(draws: int = 20000) -> tuple[str, ...]:
    """Every word the captions use (found by drawing many, deterministically), each to be one T5 token."""
    rng = random.Random(0)
    return tuple(sorted({word for _ in range(draws) for word in re.findall(r"[a-z]+", scenes.caption(scenes.random_scene(rng), rng))}))


WORDS = caption_words()
# Read a word a token, the longest caption is 24 CLIP tokens (with its two specials) and 23 T5
# tokens. Fewer context tokens make every step cheaper: SD3's 77 + 256 would be 5 times the
# picture's 64 at 256 px.
TOKENS = 32
# sample_size 256 (latents): neighbouring patches' positions one apart, as distinct as SD3's; at
# tiny's 32 they would be an eighth apart, and the model scattered its shapes over the picture.
DRAWING = Sizes(
    layers=2, sample_size=256, heads=4, head_dim=32, patch=2, vae_channels=(16, 32, 32, 32), vae_groups=8,
    vae_attention=False,  # flat shapes need no attention; it would cost most of a 1024 px decode
    words=WORDS, clip_tokens=TOKENS,
)
CAPTION_DROPOUT = 0.1
EMA_DECAY = 0.999


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """How long each stage trains; the defaults finish within an hour on a 2-core CPU."""

    vae_steps: int = 1500
    vae_batch: int = 16
    latents_256: int = 4500
    latents_512: int = 800
    transformer_steps: int = 6200
    batch_256: int = 32
    batch_512: int = 8
    every_512: int = 3  # one 512 px batch in this many
    learning_rate: float = 1e-3
    preview_fit_generated: int = 32  # generated pictures the preview factors are also fitted on


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def pixels(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 HxWx3 pictures as the VAE's input: NCHW in [-1, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def render(scene: scenes.Scene, size: int) -> np.ndarray:
    return np.asarray(scenes.render(scene, size), dtype=np.uint8)


def cosine(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A short warm-up, then down to nothing by the last step: the loss keeps falling to the end."""
    warmup = min(200, steps // 10 + 1)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
    )


def train_vae(vae: AutoencoderKL, plan: Plan, rng: random.Random) -> None:
    """Reconstruction on 64 px crops of 256 px scenes: the shapes' edges at the scale they are
    drawn, at a sixteenth of a whole picture's cost (the VAE is convolutional)."""
    optimizer = torch.optim.AdamW(vae.parameters(), lr=plan.learning_rate, weight_decay=0.0)
    schedule = cosine(optimizer, plan.vae_steps)
    vae.train()
    for step in range(plan.vae_steps):
        batch = []
        for _ in range(plan.vae_batch):
            image = render(scenes.random_training_scene(rng), 256)
            top, left = rng.randrange(0, 193, 8), rng.randrange(0, 193, 8)
            batch.append(image[top : top + 64, left : left + 64])
        x = pixels(batch)
        posterior = vae.encode(x).latent_dist
        rebuilt = vae.decode(posterior.sample()).sample
        loss = F.l1_loss(rebuilt, x) + F.mse_loss(rebuilt, x) + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == plan.vae_steps - 1:
            log(f"vae {step}/{plan.vae_steps} loss {loss.item():.4f}")
    vae.eval()


@torch.no_grad()
def encode(vae: AutoencoderKL, images: list[np.ndarray]) -> torch.Tensor:
    return torch.cat([vae.encode(pixels(images[i : i + 32])).latent_dist.mean for i in range(0, len(images), 32)])


@torch.no_grad()
def cache_latents(vae: AutoencoderKL, count: int, size: int, rng: random.Random) -> tuple[list[scenes.Scene], torch.Tensor]:
    chosen = [scenes.random_training_scene(rng) for _ in range(count)]
    raw = torch.cat([encode(vae, [render(scene, size) for scene in chosen[i : i + 256]]) for i in range(0, count, 256)])
    return chosen, raw


def set_latent_scale(vae: AutoencoderKL, raw: torch.Tensor) -> None:
    """SD3's convention, fitted to this VAE: (latent - shift) * scale has mean 0 and variance 1."""
    shift = raw.mean().item()
    scale = 1.0 / raw.std().item()
    vae.register_to_config(shift_factor=round(shift, 4), scaling_factor=round(scale, 4))
    log(f"latent shift {shift:.4f} scale {scale:.4f}")


def sigmas(count: int, generator: torch.Generator) -> torch.Tensor:
    """Noise levels, shifted like the scheduler's timesteps: half drawn logit-normal as SD3 does,
    which trains the middle of the schedule where layout and colours are decided, half evenly, so
    the last steps, where a shape's outline is sharpened, are trained too (the logit-normal draw
    alone gives them under 1 % of its draws)."""
    normal = torch.sigmoid(torch.randn(count, generator=generator))
    even = torch.rand(count, generator=generator)
    u = torch.where(torch.arange(count) % 2 == 0, normal, even)
    return SCHEDULER_SHIFT * u / (1 + (SCHEDULER_SHIFT - 1) * u)


def conditioning(pipe: StableDiffusion3Pipeline, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    embeds, _, pooled, _ = pipe.encode_prompt(
        prompt=captions, prompt_2=None, prompt_3=None, device="cpu",
        do_classifier_free_guidance=False, max_sequence_length=TOKENS,
    )
    return embeds, pooled


# Trained together: a frozen random CLIP pools a caption into a vector that barely tells "a red
# circle on blue" from "a blue circle on red", and that vector is what steers every block.
TRAINED = ("transformer", "text_encoder", "text_encoder_2", "text_encoder_3")


def train_transformer(
    pipe: StableDiffusion3Pipeline,
    data: dict[int, tuple[list[scenes.Scene], torch.Tensor]],
    plan: Plan,
    rng: random.Random,
    generator: torch.Generator,
) -> torch.nn.ModuleDict:
    """Flow matching for the transformer and the text encoders; returns their moving averages."""
    live = torch.nn.ModuleDict({name: getattr(pipe, name) for name in TRAINED})
    ema = copy.deepcopy(live).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(live.parameters(), lr=plan.learning_rate, weight_decay=0.01)
    schedule = cosine(optimizer, plan.transformer_steps)
    live.requires_grad_(True).eval()
    pipe.transformer.train()  # the encoders stay in eval mode: T5's dropout would blur the words
    for step in range(plan.transformer_steps):
        size = 512 if step % plan.every_512 == plan.every_512 - 1 else 256
        chosen, latents = data[size]
        picks = [rng.randrange(len(chosen)) for _ in range(plan.batch_512 if size == 512 else plan.batch_256)]
        x0 = latents[picks]
        captions = ["" if rng.random() < CAPTION_DROPOUT else scenes.caption(chosen[i], rng) for i in picks]
        embeds, pooled = conditioning(pipe, captions)
        noise = torch.randn(x0.shape, generator=generator)
        s = sigmas(len(picks), generator)
        xt = (1 - s[:, None, None, None]) * x0 + s[:, None, None, None] * noise
        predicted = pipe.transformer(xt, embeds, pooled, s * 1000).sample
        loss = F.mse_loss(predicted, noise - x0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(live.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            decay = min(EMA_DECAY, (step + 1) / (step + 10))
            for kept, trained in zip(ema.parameters(), live.parameters(), strict=True):
                kept.lerp_(trained, 1 - decay)
        if step % 100 == 0 or step == plan.transformer_steps - 1:
            log(f"transformer {step}/{plan.transformer_steps} {size}px loss {loss.item():.4f}")
    return ema


@torch.no_grad()
def generated_latents(pipe: StableDiffusion3Pipeline, count: int, rng: random.Random, generator: torch.Generator) -> torch.Tensor:
    """Final latents the trained pipeline itself denoises (model space), as the preview sees them."""
    prompts = [scenes.caption(scenes.random_training_scene(rng), rng) for _ in range(count)]
    return torch.cat([
        pipe(prompt=prompts[i : i + 16], height=256, width=256, num_inference_steps=28, guidance_scale=7.0,
             max_sequence_length=TOKENS, generator=generator, output_type="latent").images
        for i in range(0, count, 16)
    ])


@torch.no_grad()
def fit_latent_rgb(pipe: StableDiffusion3Pipeline, plan: Plan, rng: random.Random, generator: torch.Generator) -> tuple[list[list[float]], list[float]]:
    """Least squares from scaled latents to the decoded picture at the latents' size, as the
    `latent2rgb` preview applies them: rgb in [-1, 1] = latent @ factors + bias. Fitted on encoded
    scenes and on the pipeline's own generated latents together: generated latents spread wider
    than the encoder's in some channels, which the decoder ignores and a map fitted on encoded
    latents alone turns into colour (run 3's last preview was 8 dB from its picture)."""
    vae = pipe.vae
    encoded = encode(vae, [render(scenes.random_training_scene(rng), 256) for _ in range(256)])
    scaled = torch.cat([(encoded - vae.config.shift_factor) * vae.config.scaling_factor, generated_latents(pipe, plan.preview_fit_generated, rng, generator)])
    raw = scaled / vae.config.scaling_factor + vae.config.shift_factor
    decoded = torch.cat([vae.decode(raw[i : i + 32]).sample for i in range(0, len(raw), 32)]).clamp(-1, 1)
    target = F.interpolate(decoded, size=raw.shape[-2:], mode="area")
    inputs = torch.cat([scaled.permute(0, 2, 3, 1).reshape(-1, scaled.shape[1]), torch.ones(scaled.numel() // scaled.shape[1], 1)], 1)
    solution = torch.linalg.lstsq(inputs.double(), target.permute(0, 2, 3, 1).reshape(-1, 3).double()).solution.float()
    return [[round(v, 5) for v in row] for row in solution[:-1].tolist()], [round(v, 5) for v in solution[-1].tolist()]


def train(out: Path, plan: Plan, seed: int) -> None:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    started = time.monotonic()
    pipe = build_pipeline(seed, DRAWING)
    pipe.set_progress_bar_config(disable=True)
    log(f"transformer {sum(p.numel() for p in pipe.transformer.parameters()) / 1e6:.2f} M parameters, "
        f"vae {sum(p.numel() for p in pipe.vae.parameters()) / 1e6:.2f} M; {len(WORDS)} caption words")
    train_vae(pipe.vae, plan, rng)
    pipe.vae.requires_grad_(False)
    data = {size: cache_latents(pipe.vae, count, size, rng) for size, count in ((256, plan.latents_256), (512, plan.latents_512))}
    set_latent_scale(pipe.vae, data[256][1])
    for size, (chosen, raw) in data.items():
        data[size] = (chosen, (raw - pipe.vae.config.shift_factor) * pipe.vae.config.scaling_factor)
    log(f"latents cached after {time.monotonic() - started:.0f} s")
    for name, module in train_transformer(pipe, data, plan, rng, generator).items():
        setattr(pipe, name, module)
    factors, bias = fit_latent_rgb(pipe, plan, rng, generator)
    pipe.save_pretrained(out)
    ModelSettings(max_sequence_length=TOKENS, latent_rgb_factors=factors, latent_rgb_bias=bias).write(out)
    log(f"saved to {out} after {time.monotonic() - started:.0f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m latentcast.server.training.train", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the model folder to write (diffusers layout)")
    parser.add_argument("--seed", type=int, default=0)
    for field in dataclasses.fields(Plan):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    plan = Plan(**{field.name: getattr(args, field.name) for field in dataclasses.fields(Plan)})
    train(args.out, plan, args.seed)


if __name__ == "__main__":
    main()
