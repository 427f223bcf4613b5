"""The training script on a plan a few seconds long, for tests that need a trained folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.processes import ROOT

SHORT_PLAN = (
    "--vae-steps", "3", "--vae-batch", "2", "--latents-256", "16", "--latents-512", "4",
    "--transformer-steps", "3", "--batch-256", "4", "--batch-512", "2",
)


def train_briefly(out: Path) -> Path:
    """Run `python -m latentcast.server.training.train` on SHORT_PLAN into `out`."""
    subprocess.run([sys.executable, "-m", "latentcast.server.training.train", "--out", str(out), *SHORT_PLAN],
                   cwd=ROOT, check=True, capture_output=True)
    return out
