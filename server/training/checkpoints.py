"""A training run's whole state on disk, so that a run stopped and resumed is the run uninterrupted.

What a step depends on is saved, not only the weights: the live weights and their moving average,
the optimizer's moments, the learning-rate schedule's position, and every random generator the
loop draws from (Python's for scenes and captions, a torch generator for noise and noise levels,
torch's global generator for the VAE's posterior samples). Resumed from it on the same machine,
the next step computes the same numbers, byte for byte, as it would have without the stop.

The latent cache (hundreds of MB, written once) lives in a file of its own beside the checkpoint,
so a checkpoint every few minutes rewrites only what changes. Both are written under a temporary
name and renamed, so a run killed mid-write leaves the previous checkpoint whole.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"
LATENTS = "latents.pt"


def save_atomically(value: Any, path: Path) -> None:
    """`torch.save` to a temporary name, flushed, then renamed over `path`."""
    staging = path.with_name(f".{path.name}.tmp")
    with open(staging, "wb") as file:
        torch.save(value, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(staging, path)


def random_states(rng: random.Random, generator: torch.Generator) -> dict[str, Any]:
    return {"python": rng.getstate(), "generator": generator.get_state(), "torch": torch.get_rng_state()}


def restore_random_states(states: dict[str, Any], rng: random.Random, generator: torch.Generator) -> None:
    rng.setstate(states["python"])
    generator.set_state(states["generator"])
    torch.set_rng_state(states["torch"])


def load(folder: Path, name: str = CHECKPOINT) -> dict[str, Any] | None:
    path = folder / name
    if not path.is_file():
        return None
    # Our own files: they hold Python's random state (tuples) and plan fields beside tensors.
    return torch.load(path, map_location="cpu", weights_only=False)
