"""The training script, on a plan a few seconds long: seeded runs give byte-identical folders, and
the folder is served through `from_pretrained` with its own T5 length, latent -> RGB factors and
4x4 patches (sizes between multiples of 32 generated larger and cropped)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import httpx
import torch
from PIL import Image

from latentcast.server.engine.loader import load_pipeline
from latentcast.server.engine.previews import SD3_LATENT_RGB_FACTORS, make_previewer
from latentcast.server.training.train import T5_TOKENS
from tests.support import ServerProcess, collect_from_the_start, previewed_steps
from tests.training.short_plan import train_briefly


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


async def test_a_seeded_run_is_reproducible_and_is_served_as_a_model(tmp_path: Path) -> None:
    first = digests(train_briefly(tmp_path / "one"))
    assert digests(train_briefly(tmp_path / "two")) == first
    assert {"latentcast.json", "transformer/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"} <= set(first)

    model = load_pipeline(str(tmp_path / "one"), data_dir=tmp_path)
    assert model.settings.max_sequence_length == T5_TOKENS
    assert len(model.settings.latent_rgb_factors) == 16
    assert model.settings.latent_rgb_factors != SD3_LATENT_RGB_FACTORS  # fitted to this VAE
    assert model.pipe.transformer.config.patch_size == 4
    latent = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    own = make_previewer("latent2rgb", model.pipe, None, model.settings)(latent)[0]
    sd3 = make_previewer("latent2rgb", model.pipe, None)(latent)[0]
    assert own.tobytes() != sd3.tobytes()  # the preview paints with the folder's factors

    server = ServerProcess(tmp_path / "data", "--model", str(tmp_path / "one"), "--preview-min-interval", "0").start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
            body = {"prompt": "a large red circle on a blue background, top left", "width": 200, "height": 136, "num_inference_steps": 5}
            _, events = await collect_from_the_start(server, http, body, previews="binary")
            assert events[-1]["type"] == "task_postprocess_end", events[-1]
            picture = Image.open(io.BytesIO((await http.get(events[-1]["message"][0]["url"])).content))
            assert picture.size == (200, 136)
            last_preview = Image.open(io.BytesIO(previewed_steps(events, 5)[-1]["_image"]))
            assert last_preview.size == (224, 160)  # the generated size: the next multiples of 32
    finally:
        server.stop()
