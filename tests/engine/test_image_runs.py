"""Image-to-image and inpainting on `builtin:shapes`, through the worker's own `run_generation`.

The drawing model, not the random one: its VAE reconstructs the flat scenes it draws, so a picture
that goes in can be recognised coming out. The input is one of its own drawings.
"""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import pytest
from latentcast.server.engine.loader import LoadedModel, load_pipeline
from latentcast.server.engine.previews import make_previewer
from latentcast.server.engine.runner import StepReport, StopSignal, run_generation
from latentcast.server.protocol.events import EventType
from latentcast.server.tasks.catalog import DEFAULT_MODEL
from latentcast.server.tasks.params import TaskParams, image_steps
from latentcast.server.tasks.record import TaskRecord
from PIL import Image, ImageDraw

SIZE, STEPS = 64, 8
DRAWING = "a large red circle on a blue background, center"
REPAINT = "a large yellow square on a green background, center"
# Mean absolute difference per channel (0-255) within which a picture is "nearly" its input: the
# VAE's round trip of a flat scene and one lightest step of denoising.
NEARLY = 12.0


class Run:
    """One run's events, previews and outputs, as the event pump would get them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.steps: list[StepReport] = []
        self.outputs: dict[str, bytes] = {}

    def emit(self, kind: str, message: Any) -> None:
        self.events.append((str(kind), message))

    def step(self, report: StepReport) -> None:
        self.steps.append(report)

    def save(self, name: str, data: bytes) -> str:
        self.outputs[name] = data
        return name

    def image(self) -> np.ndarray:
        errors = [m for kind, m in self.events if kind == EventType.ERROR]
        assert not errors, errors
        return np.asarray(Image.open(io.BytesIO(self.outputs["0.png"])).convert("RGB")).astype(np.int16)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return load_pipeline(DEFAULT_MODEL, data_dir=tmp_path_factory.mktemp("data"))


def generate(model: LoadedModel, prompt: str, *, seed: int = 3, inputs: dict[str, bytes] | None = None, **fields: Any) -> Run:
    params = TaskParams(prompt=prompt, width=SIZE, height=SIZE, num_inference_steps=STEPS, **fields)
    record = TaskRecord(id="t", token="", params=params, model=model.name, seed=seed, created_at=time.time(),
                        inputs=list(inputs or {}))
    run = Run()
    run_generation(
        record, model, run, StopSignal(), preview_min_interval=0.0, inputs=inputs,
        previewer_for=lambda method: make_previewer(method, model.pipe, None, model.settings),
    )
    return run


def png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def drawing(shapes: LoadedModel) -> bytes:
    return generate(shapes, DRAWING, seed=1).outputs["0.png"]


def test_strength_one_is_the_text_to_image_run_of_the_same_seed_byte_for_byte(shapes, drawing) -> None:
    text = generate(shapes, REPAINT)
    image = generate(shapes, REPAINT, inputs={"image": drawing}, strength=1.0)
    assert image.outputs["0.png"] == text.outputs["0.png"]
    assert [r.progress["step"] for r in image.steps] == list(range(1, STEPS + 1))


def test_strength_near_zero_returns_nearly_the_input(shapes, drawing) -> None:
    run = generate(shapes, REPAINT, inputs={"image": drawing}, strength=0.0)
    started = next(m for kind, m in run.events if kind == EventType.START)
    assert started["steps"] == 1  # the last, lightest step of the schedule
    given = np.asarray(Image.open(io.BytesIO(drawing)).convert("RGB")).astype(np.int16)
    assert float(np.abs(run.image() - given).mean()) < NEARLY
    # while a text-to-image run of the other prompt is far from it
    assert float(np.abs(generate(shapes, REPAINT).image() - given).mean()) > 4 * NEARLY


@pytest.mark.parametrize("strength", [0.5, 0.3])
def test_a_mid_strength_runs_the_last_ceil_strength_x_steps_with_a_preview_each(shapes, drawing, strength) -> None:
    run = generate(shapes, REPAINT, inputs={"image": drawing}, strength=strength)
    expected = image_steps(strength, STEPS)
    assert expected == {0.5: 4, 0.3: 3}[strength]
    started = next(m for kind, m in run.events if kind == EventType.START)
    assert started["steps"] == expected
    assert [(r.progress["step"], r.progress["steps"]) for r in run.steps] == [(s, expected) for s in range(1, expected + 1)]
    assert all(r.preview is not None for r in run.steps)
    assert run.steps[-1].progress["percent"] == 100.0


def test_inpainting_keeps_the_unmasked_pixels_and_repaints_the_masked_ones(shapes, drawing) -> None:
    mask = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, SIZE // 2 - 1, SIZE - 1), fill=255)  # the left half is repainted
    run = generate(shapes, REPAINT, inputs={"image": drawing, "mask": png(mask)}, strength=1.0)
    given = np.asarray(Image.open(io.BytesIO(drawing)).convert("RGB")).astype(np.int16)
    result = run.image()
    kept, repainted = (slice(None), slice(SIZE // 2, None)), (slice(None), slice(0, SIZE // 2))
    assert np.array_equal(result[kept], given[kept])  # laid over the input: exactly its pixels
    assert float(np.abs(result[repainted] - given[repainted]).mean()) > 2 * NEARLY


def test_a_blurred_mask_softens_the_seam_and_keeps_what_it_does_not_reach(shapes, drawing) -> None:
    mask = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, SIZE // 2 - 1, SIZE - 1), fill=255)
    run = generate(shapes, REPAINT, inputs={"image": drawing, "mask": png(mask)}, strength=1.0, mask_blur=4)
    given = np.asarray(Image.open(io.BytesIO(drawing)).convert("RGB")).astype(np.int16)
    result = run.image()
    far = (slice(None), slice(SIZE // 2 + 16, None))  # beyond the blur's reach
    assert np.array_equal(result[far], given[far])
    seam = result[:, SIZE // 2 - 2 : SIZE // 2 + 2]
    assert not np.array_equal(seam, given[:, SIZE // 2 - 2 : SIZE // 2 + 2])
