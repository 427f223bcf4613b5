"""Load the SD3 pipeline a worker serves, whatever names it: the builtin model, a folder, a hub id.

All three go through `StableDiffusion3Pipeline.from_pretrained`, so the builtin model exercises the
very code path real weights take; only where the folder comes from differs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

# (each from its own module: mypy takes diffusers' top-level names for its no-torch placeholders)
from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import StableDiffusion3Pipeline

from latentcast.server.engine.builtin import BUILTIN_MODELS, ensure_builtin
from latentcast.server.engine.model_settings import ModelSettings

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def quiet_libraries() -> None:
    """diffusers and transformers print loading bars and advice; the service reports through events."""
    import diffusers.utils.logging
    import transformers.utils.logging

    for library in (diffusers.utils.logging, transformers.utils.logging):
        library.disable_progress_bar()
        library.set_verbosity_error()


class ModelLoadError(RuntimeError):
    """The model could not be loaded; the message names the model and the cause."""


@dataclasses.dataclass(frozen=True, slots=True)
class LoadedModel:
    pipe: StableDiffusion3Pipeline
    name: str  # as the operator gave it, e.g. "builtin:tiny" or a path
    device: str
    dtype: torch.dtype
    settings: ModelSettings = ModelSettings()


def resolve_dtype(dtype: str | None, device: str) -> torch.dtype:
    """The weights' dtype: as named, else half precision on CUDA and full precision elsewhere.

    CPUs have no fast fp16 kernels for most of SD3's ops, so fp32 is both the faster and the safe
    default there.
    """
    if dtype is None:
        return torch.float16 if device.startswith("cuda") else torch.float32
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}") from None


def load_pipeline(model: str, *, data_dir: Path, device: str = "cpu", dtype: str | None = None) -> LoadedModel:
    """Load `model` onto `device`, ready to run in a worker thread.

    `model` is a builtin name (`builtin:tiny`, built into `data_dir/models` on first use), a local
    folder in diffusers' SD3 layout, or a hub id. Any failure to find, read, or place the weights
    raises `ModelLoadError`; a bad `dtype` name raises `ValueError`.
    """
    torch_dtype = resolve_dtype(dtype, device)
    try:
        source, options = _locate(model, data_dir)
        # diffusers 0.42 takes `dtype=`; `torch_dtype=` still works but is deprecated.
        pipe = StableDiffusion3Pipeline.from_pretrained(source, dtype=torch_dtype, **options)
        pipe.to(device)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"could not load model {model!r}: {type(exc).__name__}: {exc}") from exc
    # The worker reports progress as events; tqdm bars on stderr would only be noise.
    pipe.set_progress_bar_config(disable=True)
    settings = ModelSettings.read(Path(source)) if Path(source).is_dir() else ModelSettings()
    return LoadedModel(pipe=pipe, name=model, device=device, dtype=torch_dtype, settings=settings)


def _locate(model: str, data_dir: Path) -> tuple[str, dict[str, Any]]:
    """Where `from_pretrained` should look for `model`, and the extra arguments that folder needs."""
    if model.startswith("builtin:"):
        if model not in BUILTIN_MODELS:
            raise ModelLoadError(
                f"could not load model {model!r}: no such builtin model; builtin models: "
                + ", ".join(sorted(BUILTIN_MODELS))
            )
        folder = ensure_builtin(model, data_dir)
    else:
        folder = Path(model).expanduser()
        if not folder.exists():
            # A hub id is exactly "owner/name"; anything else that is not on disk is a typo'd path,
            # and saying so beats a confusing hub lookup error.
            if model.startswith(("/", ".", "~")) or model.count("/") != 1:
                raise ModelLoadError(f"could not load model {model!r}: no such folder, and not a hub id (owner/name)")
            return model, {}
        if not folder.is_dir():
            raise ModelLoadError(
                f"could not load model {model!r}: not a folder; give a diffusers SD3 folder "
                "(one with model_index.json), not a single checkpoint file"
            )
    if not (folder / "text_encoder_3").is_dir():
        # SD3 runs without T5 (zeros take its embeddings' place), but from_pretrained refuses a folder
        # that lacks a component unless told the component is absent.
        return str(folder), {"text_encoder_3": None, "tokenizer_3": None}
    return str(folder), {}
