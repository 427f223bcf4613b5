"""The training script on a plan a few seconds long, for tests that need a trained folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.processes import ROOT

SHORT_PLAN = (
    "--vae-steps", "2", "--vae-batch", "2", "--latents-256", "8", "--latents-512", "2",
    "--transformer-steps", "4", "--batch-256", "2", "--batch-512", "1", "--every-512", "4",
    "--preview-fit-encoded", "4", "--preview-fit-generated", "1", "--judge-count", "0",
)


def train_briefly(out: Path, *options: str) -> Path:
    """Run `python -m latentcast.server.training.train` on SHORT_PLAN (then `options`) into `out`."""
    subprocess.run([sys.executable, "-m", "latentcast.server.training.train", "--out", str(out), *SHORT_PLAN, *options],
                   cwd=ROOT, check=True, capture_output=True)
    return out
