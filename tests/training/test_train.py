"""The training script, on a plan a few seconds long: seeded runs give byte-identical folders, a run
stopped and resumed gives the same bytes as one run straight through, every checkpoint is judged
and the best exported, and the folder is served through `from_pretrained` with its own T5 length,
latent -> RGB factors and patch (sizes between multiples of a patch generated larger and cropped)."""

from __future__ import annotations

import hashlib
import io
import json
import random
from pathlib import Path

import httpx
import pytest
import torch
from PIL import Image

from latentcast.server.engine.builtin import build_pipeline
from latentcast.server.engine.loader import load_pipeline
from latentcast.server.engine.model_settings import SD3_LATENT_RGB_FACTORS
from latentcast.server.engine.previews import make_previewer
from latentcast.server.training import scenes
from latentcast.server.training.train import DRAWING, TOKENS, WORDS
from tests.support import ServerProcess, collect_from_the_start, previewed_steps
from tests.training.short_plan import train_briefly

# Each test runs the training script (a process that imports torch and diffusers) once to three
# times on its short plan, about 20 s a run on an idle machine. The limit guards against a hang, sized for a
# machine several times slower (a loaded CI runner), not for the plan.
pytestmark = pytest.mark.timeout(1200)


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of the short plan straight through, which the other runs are compared with. It keeps
    its state in `state`, beside the model, and judges its checkpoint on two held-out prompts:
    judging draws from generators of its own, so the runs that judge nothing must match its bytes."""
    out = tmp_path_factory.mktemp("straight") / "model"
    return train_briefly(out, "--checkpoints", str(out.with_name("state")), "--judge-count", "2", "--judge-steps", "2")


async def test_a_seeded_run_is_reproducible_and_is_served_as_a_model(straight: Path, tmp_path: Path) -> None:
    first = digests(straight)
    assert digests(train_briefly(tmp_path / "two")) == first
    assert {"latentcast.json", "transformer/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"} <= set(first)

    model = load_pipeline(str(straight), data_dir=tmp_path)
    assert model.settings.max_sequence_length == TOKENS
    assert len(model.settings.latent_rgb_factors) == 16
    assert model.settings.latent_rgb_factors != SD3_LATENT_RGB_FACTORS  # fitted to this VAE
    assert model.pipe.transformer.config.patch_size == DRAWING.patch  # the drawing sizes, not tiny's
    # the text encoders were trained with the transformer, not left as the seed drew them
    drawn = build_pipeline(0, DRAWING)
    for name in ("text_encoder", "text_encoder_2", "text_encoder_3"):
        trained, seeded = getattr(model.pipe, name).state_dict(), getattr(drawn, name).state_dict()
        assert any(not torch.equal(trained[key], seeded[key]) for key in seeded), name
    latent = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    own = make_previewer("latent2rgb", model.pipe, None, model.settings)(latent)[0]
    sd3 = make_previewer("latent2rgb", model.pipe, None)(latent)[0]
    assert own.tobytes() != sd3.tobytes()  # the preview paints with the folder's factors

    server = ServerProcess(tmp_path / "data", "--preview-min-interval", "0", model=str(straight)).start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
            body = {"prompt": "a large red circle on a blue background, top left", "width": 200, "height": 136, "num_inference_steps": 5}
            _, events = await collect_from_the_start(server, http, body, previews="binary")
            assert events[-1]["type"] == "task_postprocess_end", events[-1]
            picture = Image.open(io.BytesIO((await http.get(events[-1]["message"][0]["url"])).content))
            assert picture.size == (200, 136)
            last = previewed_steps(events, 5)[-1]
            last_preview = Image.open(io.BytesIO(last["_image"]))
            step = 8 * DRAWING.patch  # a latent patch in pixels: sizes are generated at its next multiple
            # latent2rgb: one pixel per latent cell of the generated size, previewing the task's image
            assert last_preview.size == (-(-200 // step) * step // 8, -(-136 // step) * step // 8) == (26, 18)
            assert (last["message"]["preview"]["image_width"], last["message"]["preview"]["image_height"]) == (200, 136)
    finally:
        server.stop()


def test_a_run_stopped_and_resumed_gives_the_bytes_of_one_run_straight_through(straight: Path, tmp_path: Path) -> None:
    # stopped inside the VAE stage (step 1 of 2), then inside the transformer stage (step 2 of 4)
    out, state = tmp_path / "resumed", tmp_path / "state"
    train_briefly(out, "--checkpoints", str(state), "--stop-after", "1")
    assert not out.exists() and (state / "checkpoint.pt").is_file()
    train_briefly(out, "--checkpoints", str(state), "--resume", "--stop-after", "4")
    assert not out.exists() and (state / "latents.pt").is_file()
    train_briefly(out, "--checkpoints", str(state), "--resume")
    assert digests(out) == digests(straight)


def test_each_checkpoint_is_judged_on_held_out_prompts_and_the_best_is_exported(straight: Path, tmp_path: Path) -> None:
    state = straight.with_name("state")
    curve = [json.loads(line) for line in (state / "curve.jsonl").read_text().splitlines()]
    assert [point["step"] for point in curve] == [4]
    assert curve[0]["count"] == 2 and set(curve[0]) >= {"hours", "background", "colour", "shape"}
    assert json.loads((state / "best" / "judgment.json").read_text()) == curve[0]
    model = load_pipeline(str(state / "best"), data_dir=tmp_path)
    assert model.settings.max_sequence_length == TOKENS


def test_both_tokenizers_read_each_caption_word_as_one_token_and_spell_out_the_rest() -> None:
    pipe = build_pipeline(0, DRAWING)
    clip, t5 = pipe.tokenizer, pipe.tokenizer_3
    for word in WORDS:
        assert clip.convert_ids_to_tokens(clip(word).input_ids) == ["<|startoftext|>", f"{word}</w>", "<|endoftext|>"]
        assert t5.convert_ids_to_tokens(t5(word).input_ids) == [f"\u2581{word}", "</s>"]
    # lower-cased as CLIP does; a word not in the captions is spelt out, piece by piece
    red, *rest = clip.convert_ids_to_tokens(clip("Red triangles").input_ids)[1:-1]
    assert red == "red</w>" and len(rest) > 1 and "".join(rest) == "triangles</w>"
    # the longest captions fit the 32 tokens both are padded to
    rng = random.Random(0)
    captions = [scenes.caption(scenes.random_scene(rng), rng) for _ in range(2000)]
    assert max(len(clip(c).input_ids) for c in captions) <= TOKENS
    assert max(len(t5(c).input_ids) for c in captions) <= TOKENS
    assert clip.model_max_length == TOKENS == pipe.text_encoder.config.max_position_embeddings
