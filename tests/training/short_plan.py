"""The training script on a plan a few seconds long, for tests that need a trained folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.processes import ROOT

SHORT_PLAN = (
    "--vae-steps", "4", "--vae-batch", "2", "--latents-256", "16", "--latents-512", "4",
    "--transformer-steps", "6", "--batch-256", "4", "--batch-512", "2",
    "--preview-fit-encoded", "8", "--preview-fit-generated", "2", "--judge-count", "0",
)


def train_briefly(out: Path, *options: str) -> Path:
    """Run `python -m latentcast.server.training.train` on SHORT_PLAN (then `options`) into `out`."""
    subprocess.run([sys.executable, "-m", "latentcast.server.training.train", "--out", str(out), *SHORT_PLAN, *options],
                   cwd=ROOT, check=True, capture_output=True)
    return out
