"""`builtin:shapes`, the model `latentcast serve` runs by default, as it ships: loaded from the
package through `from_pretrained` (no training at start), it draws held-out prompts with the right
background and object colour, the same picture for the same seed, and its live previews approach
the finished picture step by step.

The prompts are held out of its training (server.training.scenes.HELD_OUT), worded and seeded as
`bench.drawing` and the training script's judge word and seed them; the checker reads the picture's
geometry, as a person would look at it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from latentcast.server.engine.builtin import BUILTIN_MODELS, ensure_builtin
from latentcast.server.engine.loader import LoadedModel, load_pipeline
from latentcast.server.tasks.catalog import DEFAULT_MODEL
from latentcast.server.training.checker import judge, psnr
from latentcast.server.training.judging import generate, held_out_prompts

SIZE, STEPS = 256, 28
# Held-out prompts (their index is their seed) that the shipped weights draw with the right
# background and object colour; judgment.json beside the weights has the figures on all 100.
DRAWN = (0, 1, 3, 4, 5, 6)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return load_pipeline(DEFAULT_MODEL, data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def drawn(shapes: LoadedModel) -> dict[int, tuple[Image.Image, list[Image.Image]]]:
    prompts = held_out_prompts(max(DRAWN) + 1)
    return {index: generate(shapes, prompts[index][1], SIZE, seed=index, steps=STEPS)[:2] for index in DRAWN}


def test_the_default_model_ships_in_the_package_as_weights_within_40_mb() -> None:
    assert DEFAULT_MODEL == "builtin:shapes"
    folder = ensure_builtin(DEFAULT_MODEL, Path("/nonexistent"))  # packaged: nothing is built or written
    assert folder == BUILTIN_MODELS[DEFAULT_MODEL].packaged
    weights = sorted(folder.rglob("*.safetensors"))
    assert {p.parent.name for p in weights} >= {"transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"}
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) <= 40 * 2**20
    assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pt"))  # safetensors only
    judged = json.loads((folder / "judgment.json").read_text())
    assert judged["count"] == 100 and judged["background"] >= 0.95 and judged["colour"] >= 0.75


def test_it_draws_held_out_prompts_with_their_background_and_object_colour(shapes, drawn) -> None:
    prompts = held_out_prompts(max(DRAWN) + 1)
    for index, (final, _) in drawn.items():
        scene, prompt = prompts[index]
        verdict = judge(final, scene)
        assert (verdict.background_ok, verdict.colour_ok) == (True, True), (prompt, verdict)
    # seeded: the same prompt and seed give the same picture
    again, _, _ = generate(shapes, prompts[DRAWN[0]][1], SIZE, seed=DRAWN[0], steps=STEPS)
    assert again.tobytes() == drawn[DRAWN[0]][0].tobytes()


def test_its_previews_approach_the_finished_picture(shapes, drawn) -> None:
    side = SIZE // 8  # the latents' resolution: all the detail a latent2rgb preview has
    for final, previews in drawn.values():
        assert len(previews) == STEPS
        curve = [psnr(preview, final, side) for preview in previews]
        assert curve[-1] >= 17.0, curve  # the last preview within 17 dB of the picture
        assert curve[-1] >= curve[0] + 5.0, curve  # and far closer than the first
        middle = curve[STEPS // 2]
        assert curve[0] < middle <= curve[-1] + 0.5, curve  # closing in, not jumping at the end
