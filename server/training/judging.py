"""How well a pipeline draws the held-out prompts, judged by the geometry checker.

The training script judges every checkpoint with `judge` (all 100 held-out prompts by default, in
batches), so its learning curve and its choice of the best weights so far rest on the same prompts,
seeds and checker as `bench.drawing`, which runs them one by one through the worker's own code
(`generate`, as a task runs). The two can differ a little: batching changes the numerics slightly.
"""

from __future__ import annotations

import dataclasses
import io
import random
import time
from typing import Any

import torch

# (each from its own module: mypy takes diffusers' top-level names for its no-torch placeholders)
from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import StableDiffusion3Pipeline
from PIL import Image

from latentcast.server.training import scenes
from latentcast.server.training.checker import Verdict
from latentcast.server.training.checker import judge as judge_picture

GUIDANCE = 7.0  # the API's default guidance_scale
BATCH = 25


def held_out_prompts(count: int) -> list[tuple[scenes.Scene, str]]:
    """The first `count` held-out scenes with their captions, as `bench.drawing` words them."""
    rng = random.Random(0)
    return [(scene, scenes.caption(scene, rng)) for scene in scenes.HELD_OUT[:count]]


@dataclasses.dataclass(frozen=True, slots=True)
class Scores:
    verdicts: tuple[Verdict, ...]

    def share(self, field: str) -> float:
        return sum(getattr(v, field) for v in self.verdicts) / len(self.verdicts)

    def summary(self) -> dict[str, Any]:
        return {"count": len(self.verdicts), "background": self.share("background_ok"),
                "colour": self.share("colour_ok"), "shape": self.share("shape_ok")}

    def beats(self, previous: dict[str, Any] | None) -> bool:
        """No worse than `previous` on background, object colour and shape, and better on one of them."""
        if previous is None:
            return True
        now = self.summary()
        figures = ("background", "colour", "shape")
        return all(now[f] >= previous[f] for f in figures) and any(now[f] > previous[f] for f in figures)


@torch.no_grad()
def judge(pipe: StableDiffusion3Pipeline, *, count: int, size: int, steps: int, max_sequence_length: int) -> Scores:
    """Draw the first `count` held-out prompts (seed = their index) and judge each picture."""
    chosen = held_out_prompts(count)
    verdicts: list[Verdict] = []
    for start in range(0, len(chosen), BATCH):
        batch = chosen[start : start + BATCH]
        images = pipe(
            prompt=[prompt for _, prompt in batch], height=size, width=size, num_inference_steps=steps,
            guidance_scale=GUIDANCE, max_sequence_length=max_sequence_length,
            generator=[torch.Generator().manual_seed(start + i) for i in range(len(batch))],
        ).images
        verdicts += [judge_picture(image, scene) for image, (scene, _) in zip(images, batch, strict=True)]
    return Scores(tuple(verdicts))


def generate(model: Any, prompt: str, size: int, seed: int, steps: int) -> tuple[Image.Image, list[Image.Image], float]:
    """Run one task through the worker's own `run_generation` with a `latent2rgb` preview every
    step, as a live viewer gets them: the final picture, every step's preview, and the seconds per
    denoising step. `model` is a `LoadedModel` (server.engine.loader)."""
    from latentcast.server.engine.previews import make_previewer
    from latentcast.server.engine.runner import StepReport, StopSignal, run_generation
    from latentcast.server.protocol.events import EventType
    from latentcast.server.tasks.params import TaskParams
    from latentcast.server.tasks.record import TaskRecord

    params = TaskParams(prompt=prompt, width=size, height=size, num_inference_steps=steps, preview_every=1)
    record = TaskRecord(id="judged", token="", params=params, model=model.name, seed=seed, created_at=time.time())
    previews: list[Image.Image] = []
    outputs: dict[str, bytes] = {}
    seconds: list[float] = []
    errors: list[Any] = []

    class Reports:  # runner.Reports, kept here: the run's previews, its denoising time, its outputs
        def emit(self, kind: str, message: Any) -> None:
            if kind == EventType.END:
                seconds.append(message["seconds"])
            if kind == EventType.ERROR:
                errors.append(message)

        def step(self, report: StepReport) -> None:
            if report.preview is not None:
                previews.append(Image.open(io.BytesIO(report.preview.data)).convert("RGB"))

        def save(self, name: str, data: bytes) -> str:
            outputs[name] = data
            return name

    run_generation(
        record, model, Reports(), StopSignal(),
        preview_min_interval=0.0,
        previewer_for=lambda method: make_previewer(method, model.pipe, None, model.settings),
    )
    if errors:
        raise RuntimeError(f"generation failed: {errors[0]}")
    return Image.open(io.BytesIO(outputs["0.png"])).convert("RGB"), previews, seconds[0] / steps
