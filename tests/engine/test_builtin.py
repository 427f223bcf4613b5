"""The builtin model is built offline, deterministically, and loads like real weights."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusion3Pipeline

from latentcast.server.engine.builtin import BUILTIN_MODELS, build_tiny_pipeline, ensure_builtin
from latentcast.server.engine.loader import LoadedModel, ModelLoadError, load_pipeline, resolve_dtype

COMPONENTS = (
    "scheduler",
    "text_encoder",
    "text_encoder_2",
    "text_encoder_3",
    "tokenizer",
    "tokenizer_2",
    "tokenizer_3",
    "transformer",
    "vae",
)


def _files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _generate(pipe: StableDiffusion3Pipeline, seed: int, size: int = 64) -> np.ndarray:
    image = pipe(
        "a lighthouse at dusk",
        num_inference_steps=4,
        height=size,
        width=size,
        generator=torch.Generator().manual_seed(seed),
    ).images[0]
    assert image.size == (size, size)
    return np.asarray(image)


def test_builds_a_complete_sd3_folder(data_dir: Path, tiny: LoadedModel) -> None:
    folder = data_dir / "models" / "builtin-tiny"
    assert (folder / "model_index.json").is_file()
    for name in COMPONENTS:
        assert (folder / name).is_dir(), name
    # Only the published folder: no staging directory is left behind.
    assert [path.name for path in (data_dir / "models").iterdir()] == ["builtin-tiny"]
    assert sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) < 5_000_000


def test_second_call_reuses_the_folder(data_dir: Path, tiny: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_build(seed: int) -> StableDiffusion3Pipeline:
        raise AssertionError("rebuilt an existing builtin model")

    spec = BUILTIN_MODELS["builtin:tiny"]
    monkeypatch.setitem(BUILTIN_MODELS, "builtin:tiny", dataclasses.replace(spec, build=must_not_build))
    assert ensure_builtin("builtin:tiny", data_dir) == data_dir / "models" / "builtin-tiny"


def test_rebuild_is_byte_identical(tmp_path: Path) -> None:
    first = _files(ensure_builtin("builtin:tiny", tmp_path / "one"))
    second = _files(ensure_builtin("builtin:tiny", tmp_path / "two"))
    assert first.keys() == second.keys()
    assert any(name.endswith(".safetensors") for name in first)
    for name in first:
        assert first[name] == second[name], name


def test_building_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    build_tiny_pipeline(0)
    assert torch.equal(torch.rand(4), expected)


def test_failed_build_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(seed: int) -> StableDiffusion3Pipeline:
        raise OSError("disk full")

    spec = BUILTIN_MODELS["builtin:tiny"]
    monkeypatch.setitem(BUILTIN_MODELS, "builtin:tiny", dataclasses.replace(spec, build=crash))
    with pytest.raises(OSError, match="disk full"):
        ensure_builtin("builtin:tiny", tmp_path)
    assert list((tmp_path / "models").iterdir()) == []


def test_unknown_builtin_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="builtin:tiny"):
        ensure_builtin("builtin:huge", tmp_path)
    with pytest.raises(ModelLoadError, match="builtin:huge"):
        load_pipeline("builtin:huge", data_dir=tmp_path)


def test_architecture_follows_sd3(tiny: LoadedModel) -> None:
    pipe = tiny.pipe
    assert isinstance(pipe, StableDiffusion3Pipeline)
    for tokenizer, encoder in ((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)):
        assert tokenizer.model_max_length == 77
        assert encoder.config.eos_token_id == tokenizer.eos_token_id == tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert len(pipe.tokenizer) == 514  # 256 bytes, their 256 </w> forms, two specials
    assert [pipe.tokenizer_3.convert_ids_to_tokens(i) for i in range(3)] == ["<pad>", "</s>", "<unk>"]
    config = pipe.transformer.config
    assert config.caption_projection_dim == config.num_attention_heads * config.attention_head_dim
    pooled_widths = pipe.text_encoder.config.projection_dim + pipe.text_encoder_2.config.projection_dim
    assert config.pooled_projection_dim == pooled_widths
    assert config.joint_attention_dim == pipe.text_encoder_3.config.d_model
    assert pipe.vae.config.latent_channels == config.in_channels == 16
    assert (pipe.vae.config.scaling_factor, pipe.vae.config.shift_factor) == (1.5305, 0.0609)
    assert pipe.vae_scale_factor == 8
    assert pipe.scheduler.config.shift == 3.0
    parameters = sum(
        p.numel()
        for module in (pipe.text_encoder, pipe.text_encoder_2, pipe.text_encoder_3, pipe.transformer, pipe.vae)
        for p in module.parameters()
    )
    assert 300_000 < parameters < 500_000


def test_loaded_model_record(tiny: LoadedModel) -> None:
    assert tiny.name == "builtin:tiny"
    assert (tiny.device, tiny.dtype) == ("cpu", torch.float32)
    assert tiny.pipe.transformer.dtype == torch.float32
    assert tiny.pipe._progress_bar_config == {"disable": True}
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny.name = "other"  # type: ignore[misc]


def test_generates_images_of_the_requested_size(tiny: LoadedModel) -> None:
    pixels = _generate(tiny.pipe, seed=7, size=64)
    assert pixels.shape == (64, 64, 3)
    assert pixels.std() > 0


def test_same_seed_same_pixels(tiny: LoadedModel) -> None:
    first = _generate(tiny.pipe, seed=11)
    assert np.array_equal(first, _generate(tiny.pipe, seed=11))
    assert not np.array_equal(first, _generate(tiny.pipe, seed=12))


def test_loads_a_local_folder_by_path(data_dir: Path, tiny: LoadedModel) -> None:
    folder = str(data_dir / "models" / "builtin-tiny")
    loaded = load_pipeline(folder, data_dir=data_dir)
    assert loaded.name == folder
    assert loaded.pipe.text_encoder_3 is not None
    assert np.array_equal(_generate(loaded.pipe, seed=3), _generate(tiny.pipe, seed=3))


def test_loads_a_folder_saved_without_t5(tmp_path: Path, tiny: LoadedModel) -> None:
    components = {**tiny.pipe.components, "text_encoder_3": None, "tokenizer_3": None}
    StableDiffusion3Pipeline(**components).save_pretrained(tmp_path / "no-t5")
    assert not (tmp_path / "no-t5" / "text_encoder_3").exists()
    loaded = load_pipeline(str(tmp_path / "no-t5"), data_dir=tmp_path)
    assert loaded.pipe.text_encoder_3 is None and loaded.pipe.tokenizer_3 is None
    assert _generate(loaded.pipe, seed=1).shape == (64, 64, 3)


def test_loads_in_the_requested_dtype(data_dir: Path, tiny: LoadedModel) -> None:
    loaded = load_pipeline("builtin:tiny", data_dir=data_dir, dtype="bfloat16")
    assert loaded.dtype == torch.bfloat16
    assert loaded.pipe.transformer.dtype == torch.bfloat16


def test_dtype_names_and_defaults() -> None:
    assert resolve_dtype(None, "cpu") == torch.float32
    assert resolve_dtype(None, "cuda") == torch.float16
    assert resolve_dtype(None, "cuda:1") == torch.float16
    assert resolve_dtype("bfloat16", "cuda") == torch.bfloat16
    with pytest.raises(ValueError, match="float32, float16, bfloat16"):
        resolve_dtype("fp8", "cpu")


def test_hub_id_fails_with_a_clear_error(tmp_path: Path) -> None:
    # No network here (and the repo does not exist): from_pretrained fails at once.
    with pytest.raises(ModelLoadError, match="latentcast-tests/no-such-model"):
        load_pipeline("latentcast-tests/no-such-model", data_dir=tmp_path)


@pytest.mark.parametrize("name", ["/no/such/folder", "./missing", "a/b/c"])
def test_missing_folder_fails_with_a_clear_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(ModelLoadError, match="no such folder"):
        load_pipeline(name, data_dir=tmp_path)


def test_a_file_is_not_a_model_folder(tmp_path: Path) -> None:
    checkpoint = tmp_path / "sd3_medium.safetensors"
    checkpoint.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="not a folder"):
        load_pipeline(str(checkpoint), data_dir=tmp_path)
