"""Train an SD3 pipeline that draws, from the synthetic scenes (docs/builtin-model.md).

    python -m latentcast.server.training.train --out FOLDER --checkpoints DIR [--hours H] [--resume]

Seeded and deterministic on one machine (torch's CPU kernels are), and resumable: the run writes
its whole state to `--checkpoints` every `--checkpoint-minutes`, and `--resume` continues from
the last one on the same schedule as a run straight through (`server.training.checkpoints`).
`--hours` ends this invocation after that much training, checkpointed, so a long plan runs in
chunks; `--warm-start FOLDER` starts the transformer stage from a trained folder (the shipped
weights) when the checkpoints are gone. Three stages, in the order the model needs them:

1. the 16-channel AutoencoderKL learns to reconstruct scenes (L1 + MSE, a small KL term so its
   latents stay smooth enough to diffuse, and a linear read-out of the latents' colours so the
   `latent2rgb` preview has something to read); its latents' mean and spread become the VAE's
   `shift_factor` and `scaling_factor`, so the transformer sees unit-variance latents as in SD3;
2. the SD3Transformer2DModel learns flow matching (x_t = (1 - s) x0 + s e, target e - x0, s drawn
   half logit-normal and half evenly, then shifted by the scheduler's shift) on latents cached
   once at 256 and 512 px, together with the pipeline's own text encoders (CLIP x2 and T5), with
   10 % of captions dropped to "" for classifier-free guidance; the loss weighs the latents on and
   around the objects more, where the shape is; the saved weights are an exponential moving
   average, which denoises far better than the last step's. Every checkpoint's average is judged
   on the held-out prompts (`server.training.judging`), and the best so far is exported;
3. the `latent2rgb` preview factors are fitted by least squares from latents to the decoded
   images downscaled to the latents' size, and written beside the weights.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import random
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# (each from its own module: mypy takes diffusers' top-level names for its no-torch placeholders)
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import StableDiffusion3Pipeline

from latentcast.server.engine.builtin import SCHEDULER_SHIFT, Sizes, build_pipeline
from latentcast.server.engine.model_settings import ModelSettings
from latentcast.server.training import checkpoints, judging, scenes


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
# Four blocks of 2 heads x 48 with SD3's patch of 2: a 256 px step about 2.3x `builtin:tiny`'s
# (the limit is 3x); runs 3 and 4 (three blocks of patch 4, two of patch 2) painted blobs.
DRAWING = Sizes(
    layers=4, sample_size=256, heads=2, head_dim=48, patch=2, vae_channels=(16, 32, 32, 32), vae_groups=8,
    vae_attention=False,  # flat shapes need no attention; it would cost most of a 1024 px decode
    words=WORDS, clip_tokens=TOKENS,
)
CAPTION_DROPOUT = 0.1


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """How long each stage trains and how; the defaults are the long run of docs/builtin-model.md."""

    vae_steps: int = 3000
    vae_batch: int = 16
    vae_preview_weight: float = 0.5  # the linear colour read-out's share of the VAE's loss
    latents_256: int = 6000
    latents_512: int = 800
    transformer_steps: int = 40000
    batch_256: int = 32
    batch_512: int = 8
    every_512: int = 4  # one 512 px batch in this many
    learning_rate: float = 1e-3
    warmup_steps: int = 500
    decay_from: float = 0.75  # the learning rate is held, then falls on a cosine over the plan's last quarter
    ema_decay: float = 0.9995
    # The average's decay grows as (step + 1) / (step + ema_warmup) up to ema_decay, so a run from
    # random weights forgets them fast; a warm start passes 1: its average starts at the trained
    # weights and keeps their full window from the first step.
    ema_warmup: int = 10
    object_weight: float = 3.0  # extra loss weight on latents on and next to an object
    preview_fit_encoded: int = 256  # encoded scenes the preview factors are fitted on
    preview_fit_generated: int = 32  # and generated pictures


@dataclasses.dataclass(slots=True)
class Run:
    """What one invocation was asked beyond the plan: where state goes, and when to stop."""

    out: Path
    folder: Path  # checkpoints, the latent cache, the learning curve and the best export
    checkpoint_minutes: float = 10.0
    stop_after_steps: int | None = None  # steps of the whole run (VAE, then transformer); for tests
    hours: float | None = None
    judge_count: int = 100
    judge_steps: int = 28
    device: str = "cpu"
    started: float = dataclasses.field(default_factory=time.monotonic)
    started_cpu: float = dataclasses.field(default_factory=time.process_time)
    last_checkpoint: float = dataclasses.field(default_factory=time.monotonic)
    elapsed_before: float = 0.0  # training seconds of earlier invocations
    cpu_before: float = 0.0  # and their CPU seconds

    def hours_trained(self) -> float:
        return (self.elapsed_before + time.monotonic() - self.started) / 3600

    def cpu_hours(self) -> float:
        """CPU time spent, all threads together: on a machine shared with other work, the measure
        of what training cost that wall-clock hours overstate (a 2-core hour is 2 CPU hours)."""
        return (self.cpu_before + time.process_time() - self.started_cpu) / 3600

    def checkpoint_due(self) -> bool:
        return time.monotonic() - self.last_checkpoint >= 60 * self.checkpoint_minutes

    def out_of_time(self, step: int) -> bool:
        if self.stop_after_steps is not None and step >= self.stop_after_steps:
            return True
        return self.hours is not None and time.monotonic() - self.started >= 3600 * self.hours


class Stopped(Exception):
    """This invocation's time is up; the state is checkpointed and `--resume` continues it."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def pixels(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 HxWx3 pictures as the VAE's input: NCHW in [-1, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def render(scene: scenes.Scene, size: int) -> np.ndarray:
    return np.asarray(scenes.render(scene, size), dtype=np.uint8)


def learning_rate_factor(step: int, steps: int, warmup: int, decay_from: float) -> float:
    """A linear warm-up, the rate held, then a cosine to nothing by the last step. Held rather than
    falling from the start, so that a checkpoint from any point of a long plan is usable as it is
    (its moving average anneals), and the plan's length can be judged from its learning curve."""
    if step < warmup:
        return (step + 1) / warmup
    start = int(decay_from * steps)
    if step < start:
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * (step - start) / max(1, steps - start)))


def schedule(optimizer: torch.optim.Optimizer, steps: int, warmup: int, decay_from: float) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, min(warmup, steps // 10 + 1))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, steps, warmup, decay_from))


def train_vae(vae: AutoencoderKL, plan: Plan, rng: random.Random, generator: torch.Generator, run: Run, state: dict[str, Any] | None) -> None:
    """Reconstruction on 64 px crops of 256 px scenes: the shapes' edges at the scale they are
    drawn, at a sixteenth of a whole picture's cost (the VAE is convolutional).

    A 1x1 convolution learns, with the VAE, to read each latent's colour back linearly (the area
    mean of the pixels it covers): the latents then carry colour the way the `latent2rgb` preview
    reads it, so the preview of a latent the transformer generates is close to its decode.
    """
    device = run.device
    read_out = torch.nn.Conv2d(vae.config["latent_channels"], 3, 1).to(device)
    parameters = [*vae.parameters(), *read_out.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=plan.learning_rate, weight_decay=0.0)
    lr = schedule(optimizer, plan.vae_steps, 200, 0.0)
    first = 0
    if state is not None:
        vae.load_state_dict(state["vae"])
        read_out.load_state_dict(state["read_out"])
        optimizer.load_state_dict(state["optimizer"])
        lr.load_state_dict(state["schedule"])
        checkpoints.restore_random_states(state["random"], rng, generator)
        first = state["step"]
    vae.train()
    for step in range(first, plan.vae_steps):
        if run.out_of_time(step) or run.checkpoint_due():
            checkpoints.save_atomically({
                "stage": "vae", "step": step, "plan": dataclasses.asdict(plan), "vae": vae.state_dict(), "read_out": read_out.state_dict(),
                "optimizer": optimizer.state_dict(), "schedule": lr.state_dict(),
                "random": checkpoints.random_states(rng, generator), "hours": run.hours_trained(),
                "cpu_hours": run.cpu_hours(),
            }, run.folder / checkpoints.CHECKPOINT)
            run.last_checkpoint = time.monotonic()
            log(f"checkpoint: vae step {step}")
            if run.out_of_time(step):
                raise Stopped(f"vae step {step}")
        batch = []
        for _ in range(plan.vae_batch):
            image = render(scenes.random_training_scene(rng), 256)
            top, left = rng.randrange(0, 193, 8), rng.randrange(0, 193, 8)
            batch.append(image[top : top + 64, left : left + 64])
        x = pixels(batch).to(device)
        posterior = vae.encode(x).latent_dist
        rebuilt = vae.decode(posterior.sample()).sample
        colours = F.mse_loss(read_out(posterior.mean), F.avg_pool2d(x, 2 ** (len(vae.config["block_out_channels"]) - 1)))
        loss = F.l1_loss(rebuilt, x) + F.mse_loss(rebuilt, x) + 1e-6 * posterior.kl().mean() + plan.vae_preview_weight * colours
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        lr.step()
        if step % 100 == 0 or step == plan.vae_steps - 1:
            log(f"vae {step}/{plan.vae_steps} loss {loss.item():.4f} colours {colours.item():.4f}")
    vae.eval()


@torch.no_grad()
def encode(vae: AutoencoderKL, images: list[np.ndarray]) -> torch.Tensor:
    device = vae.device
    return torch.cat([vae.encode(pixels(images[i : i + 32]).to(device)).latent_dist.mean.cpu() for i in range(0, len(images), 32)])


def object_mask(scene: scenes.Scene, size: int, scale: int) -> torch.Tensor:
    """1 on latents an object covers or touches (a latent's neighbours included), else 0."""
    background = np.asarray(scenes.COLOURS[scene.background], dtype=np.int16)
    on_object = np.abs(render(scene, size).astype(np.int16) - background).sum(axis=2) > 0
    covered = F.max_pool2d(torch.from_numpy(on_object).float()[None, None], scale)
    return F.max_pool2d(covered, 3, stride=1, padding=1)[0, 0].to(torch.uint8)


@torch.no_grad()
def cache_latents(vae: AutoencoderKL, count: int, size: int, rng: random.Random) -> dict[str, Any]:
    chosen = [scenes.random_training_scene(rng) for _ in range(count)]
    raw = torch.cat([encode(vae, [render(scene, size) for scene in chosen[i : i + 256]]) for i in range(0, count, 256)])
    scale = size // raw.shape[-1]
    masks = torch.stack([object_mask(scene, size, scale) for scene in chosen])
    return {"scenes": chosen, "raw": raw, "masks": masks}


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
        prompt=captions, prompt_2=captions, prompt_3=captions, device=pipe.transformer.device,
        do_classifier_free_guidance=False, max_sequence_length=TOKENS,
    )
    return embeds, pooled


# Trained together: a frozen random CLIP pools a caption into a vector that barely tells "a red
# circle on blue" from "a blue circle on red", and that vector is what steers every block.
TRAINED = ("transformer", "text_encoder", "text_encoder_2", "text_encoder_3")


def averaged(pipe: StableDiffusion3Pipeline, ema: torch.nn.ModuleDict) -> StableDiffusion3Pipeline:
    """The pipeline with the moving averages in the trained components' places (sharing the rest)."""
    components = dict(pipe.components)
    components.update(dict(ema.items()))
    view = StableDiffusion3Pipeline(**components)
    view.set_progress_bar_config(disable=True)
    return view


def train_transformer(
    pipe: StableDiffusion3Pipeline,
    data: dict[int, dict[str, Any]],
    plan: Plan,
    rng: random.Random,
    generator: torch.Generator,
    run: Run,
    state: dict[str, Any] | None,
) -> torch.nn.ModuleDict:
    """Flow matching for the transformer and the text encoders; returns their moving averages."""
    device = run.device
    live = torch.nn.ModuleDict({name: getattr(pipe, name) for name in TRAINED})
    ema = copy.deepcopy(live).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(live.parameters(), lr=plan.learning_rate, weight_decay=0.01)
    lr = schedule(optimizer, plan.transformer_steps, plan.warmup_steps, plan.decay_from)
    first = 0
    if state is not None and state["stage"] == "transformer":
        live.load_state_dict(state["live"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        lr.load_state_dict(state["schedule"])
        checkpoints.restore_random_states(state["random"], rng, generator)
        first = state["step"]
    live.requires_grad_(True).eval()
    pipe.transformer.train()  # the encoders stay in eval mode: T5's dropout would blur the words
    for step in range(first, plan.transformer_steps):
        if step > first and (run.out_of_time(plan.vae_steps + step) or run.checkpoint_due()):
            checkpoint_transformer(pipe, ema, optimizer, lr, rng, generator, plan, run, step)
            if run.out_of_time(plan.vae_steps + step):
                raise Stopped(f"transformer step {step}")
        size = 512 if step % plan.every_512 == plan.every_512 - 1 else 256
        cached = data[size]
        picks = [rng.randrange(len(cached["scenes"])) for _ in range(plan.batch_512 if size == 512 else plan.batch_256)]
        x0 = cached["latents"][picks].to(device)
        weights = 1 + plan.object_weight * cached["masks"][picks].to(device, torch.float32)[:, None]
        captions = ["" if rng.random() < CAPTION_DROPOUT else scenes.caption(cached["scenes"][i], rng) for i in picks]
        embeds, pooled = conditioning(pipe, captions)
        noise = torch.randn(x0.shape, generator=generator).to(device)
        s = sigmas(len(picks), generator).to(device)
        xt = (1 - s[:, None, None, None]) * x0 + s[:, None, None, None] * noise
        predicted = pipe.transformer(xt, embeds, pooled, s * 1000).sample
        loss = (weights * (predicted - (noise - x0)) ** 2).mean() / weights.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(live.parameters(), 1.0)
        optimizer.step()
        lr.step()
        with torch.no_grad():
            decay = min(plan.ema_decay, (step + 1) / (step + plan.ema_warmup))
            for kept, trained in zip(ema.parameters(), live.parameters(), strict=True):
                kept.lerp_(trained, 1 - decay)
        if step % 100 == 0 or step == plan.transformer_steps - 1:
            log(f"transformer {step}/{plan.transformer_steps} {size}px loss {loss.item():.4f} lr {lr.get_last_lr()[0]:.2e}")
    checkpoint_transformer(pipe, ema, optimizer, lr, rng, generator, plan, run, plan.transformer_steps)
    return ema


def checkpoint_transformer(
    pipe: StableDiffusion3Pipeline, ema: torch.nn.ModuleDict, optimizer: torch.optim.Optimizer,
    lr: torch.optim.lr_scheduler.LambdaLR, rng: random.Random, generator: torch.Generator, plan: Plan, run: Run, step: int,
) -> None:
    """Write the state, then judge the moving average on the held-out prompts and export it when it
    is the best so far. Judging draws from generators of its own, so it changes nothing the next
    training step computes."""
    live = torch.nn.ModuleDict({name: getattr(pipe, name) for name in TRAINED})
    hours = run.hours_trained()
    checkpoints.save_atomically({
        "stage": "transformer", "step": step, "plan": dataclasses.asdict(plan), "vae": pipe.vae.state_dict(), "vae_config": dict(pipe.vae.config),
        "live": live.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(), "schedule": lr.state_dict(),
        "random": checkpoints.random_states(rng, generator), "hours": hours, "cpu_hours": run.cpu_hours(),
    }, run.folder / checkpoints.CHECKPOINT)
    log(f"checkpoint: transformer step {step} after {hours:.2f} h")
    if run.judge_count:
        view = averaged(pipe, ema)
        with torch.random.fork_rng(devices=[]):
            scores = judging.judge(view, count=run.judge_count, size=256, steps=run.judge_steps, max_sequence_length=TOKENS)
        point = {"step": step, "hours": round(hours, 3), "cpu_hours": round(run.cpu_hours(), 3), **scores.summary()}
        with open(run.folder / "curve.jsonl", "a") as file:
            file.write(json.dumps(point) + "\n")
        log(f"judged: {point}")
        best = run.folder / "best"
        previous = json.loads((best / "judgment.json").read_text()) if (best / "judgment.json").is_file() else None
        if scores.beats(previous):
            with torch.random.fork_rng(devices=[]):
                export(view, plan, best, random.Random(1), torch.Generator().manual_seed(1))
            (best / "judgment.json").write_text(json.dumps(point, indent=1) + "\n")
            log(f"exported the best so far to {best}")
    run.last_checkpoint = time.monotonic()


@torch.no_grad()
def generated_latents(pipe: StableDiffusion3Pipeline, count: int, rng: random.Random, generator: torch.Generator) -> torch.Tensor:
    """Final latents the trained pipeline itself denoises (model space), as the preview sees them."""
    prompts = [scenes.caption(scenes.random_training_scene(rng), rng) for _ in range(count)]
    return torch.cat([
        pipe(prompt=prompts[i : i + 16], height=256, width=256, num_inference_steps=28, guidance_scale=7.0,
             max_sequence_length=TOKENS, generator=generator, output_type="latent").images.cpu()
        for i in range(0, count, 16)
    ])


Rgb = tuple[float, float, float]


@torch.no_grad()
def fit_latent_rgb(pipe: StableDiffusion3Pipeline, plan: Plan, rng: random.Random, generator: torch.Generator) -> tuple[tuple[Rgb, ...], Rgb]:
    """Least squares from scaled latents to the decoded picture at the latents' size, as the
    `latent2rgb` preview applies them: rgb in [-1, 1] = latent @ factors + bias. Fitted on encoded
    scenes and on the pipeline's own generated latents together: generated latents spread wider
    than the encoder's in some channels, which the decoder ignores and a map fitted on encoded
    latents alone turns into colour (run 3's last preview was 8 dB from its picture)."""
    vae = pipe.vae
    encoded = encode(vae, [render(scenes.random_training_scene(rng), 256) for _ in range(plan.preview_fit_encoded)])
    scaled = torch.cat([(encoded - vae.config.shift_factor) * vae.config.scaling_factor, generated_latents(pipe, plan.preview_fit_generated, rng, generator)])
    raw = scaled / vae.config.scaling_factor + vae.config.shift_factor
    decoded = torch.cat([vae.decode(raw[i : i + 32].to(vae.device)).sample.cpu() for i in range(0, len(raw), 32)]).clamp(-1, 1)
    target = F.interpolate(decoded, size=raw.shape[-2:], mode="area")
    inputs = torch.cat([scaled.permute(0, 2, 3, 1).reshape(-1, scaled.shape[1]), torch.ones(scaled.numel() // scaled.shape[1], 1)], 1)
    solution = torch.linalg.lstsq(inputs.double(), target.permute(0, 2, 3, 1).reshape(-1, 3).double()).solution.float()
    return tuple(_rgb(row) for row in solution[:-1].tolist()), _rgb(solution[-1].tolist())


def _rgb(values: list[float]) -> Rgb:
    r, g, b = (round(v, 5) for v in values)
    return r, g, b


def export(pipe: StableDiffusion3Pipeline, plan: Plan, out: Path, rng: random.Random, generator: torch.Generator) -> None:
    """The model folder `latentcast serve --model` loads: diffusers' layout, plus `latentcast.json`."""
    factors, bias = fit_latent_rgb(pipe, plan, rng, generator)
    staging = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    pipe.save_pretrained(staging)
    ModelSettings(max_sequence_length=TOKENS, latent_rgb_factors=factors, latent_rgb_bias=bias).write(staging)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)


def prepare_data(pipe: StableDiffusion3Pipeline, plan: Plan, rng: random.Random, run: Run, fit_scale: bool) -> dict[int, dict[str, Any]]:
    """The latent cache, made once per run and kept beside the checkpoint."""
    cached = checkpoints.load(run.folder, checkpoints.LATENTS)
    if cached is not None:
        rng.setstate(cached["python_after"])
        if fit_scale:
            pipe.vae.register_to_config(shift_factor=cached["shift"], scaling_factor=cached["scale"])
        return cached["data"]
    data = {size: cache_latents(pipe.vae, count, size, rng) for size, count in ((256, plan.latents_256), (512, plan.latents_512))}
    if fit_scale:
        set_latent_scale(pipe.vae, data[256]["raw"])
    for cell in data.values():
        cell["latents"] = (cell.pop("raw") - pipe.vae.config.shift_factor) * pipe.vae.config.scaling_factor
    checkpoints.save_atomically({"data": data, "python_after": rng.getstate(), "shift": pipe.vae.config.shift_factor,
                                 "scale": pipe.vae.config.scaling_factor}, run.folder / checkpoints.LATENTS)
    return data


def train(plan: Plan, seed: int, run: Run, *, resume: bool, warm_start: Path | None) -> None:
    run.folder.mkdir(parents=True, exist_ok=True)
    state = checkpoints.load(run.folder) if resume else None
    if resume and state is None:
        log(f"no checkpoint in {run.folder}: starting" + (f" warm from {warm_start}" if warm_start else " afresh"))
    elif not resume:
        for name in (checkpoints.CHECKPOINT, checkpoints.LATENTS, "curve.jsonl"):
            (run.folder / name).unlink(missing_ok=True)
        shutil.rmtree(run.folder / "best", ignore_errors=True)
    if state is not None and state["plan"] != dataclasses.asdict(plan):
        raise SystemExit(f"the checkpoint in {run.folder} was made on another plan: {state['plan']}")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    if state is not None:
        run.elapsed_before = state["hours"] * 3600
        run.cpu_before = state.get("cpu_hours", 0.0) * 3600
        log(f"resuming at the {state['stage']} stage, step {state['step']}, after {state['hours']:.2f} h")
    if warm_start is not None and state is None:
        pipe = StableDiffusion3Pipeline.from_pretrained(warm_start, dtype=torch.float32)
    else:
        pipe = build_pipeline(seed, DRAWING)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(run.device)
    log(f"transformer {sum(p.numel() for p in pipe.transformer.parameters()) / 1e6:.2f} M parameters, "
        f"vae {sum(p.numel() for p in pipe.vae.parameters()) / 1e6:.2f} M; {len(WORDS)} caption words")
    trains_vae = warm_start is None or state is not None
    if state is not None and state["stage"] == "transformer":
        pipe.vae.load_state_dict(state["vae"])
        pipe.vae.register_to_config(shift_factor=state["vae_config"]["shift_factor"], scaling_factor=state["vae_config"]["scaling_factor"])
        pipe.vae.eval()
    elif trains_vae:
        train_vae(pipe.vae, plan, rng, generator, run, state if state is not None and state["stage"] == "vae" else None)
    pipe.vae.requires_grad_(False)
    data = prepare_data(pipe, plan, rng, run, fit_scale=trains_vae)
    log(f"latents ready after {time.monotonic() - run.started:.0f} s")
    for name, module in train_transformer(pipe, data, plan, rng, generator, run, state).items():
        setattr(pipe, name, module)
    export(pipe, plan, run.out, rng, generator)
    log(f"saved to {run.out} after {run.hours_trained():.2f} h of training")


def export_checkpoint(folder: Path, out: Path, seed: int) -> dict[str, Any]:
    """Write the moving average of the last transformer-stage checkpoint in `folder` as a model
    folder at `out` (what the best-so-far export writes, for any checkpoint one wants to keep)."""
    state = checkpoints.load(folder)
    if state is None or state["stage"] != "transformer":
        raise SystemExit(f"no transformer-stage checkpoint in {folder}")
    pipe = build_pipeline(seed, DRAWING)
    pipe.set_progress_bar_config(disable=True)
    pipe.vae.load_state_dict(state["vae"])
    pipe.vae.register_to_config(shift_factor=state["vae_config"]["shift_factor"], scaling_factor=state["vae_config"]["scaling_factor"])
    ema = copy.deepcopy(torch.nn.ModuleDict({name: getattr(pipe, name) for name in TRAINED}))
    ema.load_state_dict(state["ema"])
    export(averaged(pipe, ema.eval().requires_grad_(False)), Plan(**state["plan"]), out, random.Random(1), torch.Generator().manual_seed(1))
    log(f"exported step {state['step']} ({state['hours']:.2f} h) to {out}")
    return state


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m latentcast.server.training.train", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the model folder to write at the end (diffusers layout)")
    parser.add_argument("--export", action="store_true",
                        help="only write the last checkpoint's moving average to --out, and stop")
    parser.add_argument("--checkpoints", type=Path, default=None,
                        help="where the run's state, latent cache, learning curve and best export live (default: OUT.training)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --checkpoints")
    parser.add_argument("--warm-start", type=Path, default=None,
                        help="a trained model folder the transformer stage starts from when there is no checkpoint")
    parser.add_argument("--hours", type=float, default=None, help="end this invocation after this much training, checkpointed")
    parser.add_argument("--checkpoint-minutes", type=float, default=10.0)
    parser.add_argument("--stop-after", type=int, default=None, help="end after this many steps of the whole run, checkpointed")
    parser.add_argument("--judge-count", type=int, default=100, help="held-out prompts each checkpoint is judged on (0: none)")
    parser.add_argument("--judge-steps", type=int, default=28)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda: the same plan, faster")
    parser.add_argument("--seed", type=int, default=0)
    for field in dataclasses.fields(Plan):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    folder = args.checkpoints or args.out.with_name(args.out.name + ".training")
    if args.export:
        export_checkpoint(folder, args.out, args.seed)
        return
    plan = Plan(**{field.name: getattr(args, field.name) for field in dataclasses.fields(Plan)})
    run = Run(out=args.out, folder=folder,
              checkpoint_minutes=args.checkpoint_minutes, stop_after_steps=args.stop_after, hours=args.hours,
              judge_count=args.judge_count, judge_steps=args.judge_steps, device=args.device)
    try:
        train(plan, args.seed, run, resume=args.resume, warm_start=args.warm_start)
    except Stopped as stop:
        log(f"stopped at {stop}, checkpointed in {run.folder}; continue with --resume")
        sys.exit(0)


if __name__ == "__main__":
    main()
