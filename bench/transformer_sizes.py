"""h. What a transformer of each candidate size costs, before an hour is spent training it.

For the builtin model being trained to draw (docs/builtin-model.md): the time of one training step
(forward and backward of a batch at 256 px, then AdamW) and of one denoising step at 256 px with
guidance (a batch of 2), for run 3's transformer and the patch-2 shapes the next run could take. The text
encoders and the VAE are left out: they are the same in every row. (Run 3's whole 256 px step is
1.24x `builtin:tiny`'s, bench.drawing; the limit is 2x.)

    python -m bench.transformer_sizes
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from bench.common import Report, median, parser

if TYPE_CHECKING:
    from latentcast.server.engine.builtin import Sizes

TRAINING_BATCH = 32
LATENT_SIDE = 32  # 256 px


def candidates() -> dict[str, "Sizes"]:
    from latentcast.server.training.train import DRAWING

    return {
        "run 3: patch 4, 3 blocks, 4 heads x 32": DRAWING,
        "patch 2, 3 blocks, 4 heads x 32": dataclasses.replace(DRAWING, patch=2),
        "patch 2, 3 blocks, 3 heads x 32": dataclasses.replace(DRAWING, patch=2, heads=3),
        "patch 2, 2 blocks, 4 heads x 32": dataclasses.replace(DRAWING, patch=2, layers=2),
        "patch 2, 4 blocks, 2 heads x 48": dataclasses.replace(DRAWING, patch=2, layers=4, heads=2, head_dim=48),
    }


def seconds(call: Callable[[], None], repeats: int) -> float:
    call()  # the first call allocates
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return median(times)


def measure(sizes: "Sizes", batch: int, repeats: int) -> dict[str, float]:
    import torch

    from latentcast.server.engine.builtin import build_pipeline
    from latentcast.server.training.train import conditioning

    pipe = build_pipeline(0, sizes)
    transformer = pipe.transformer
    with torch.no_grad():
        embeds, pooled = conditioning(pipe, ["a large red circle on a blue background, top left"] * batch)
    latents = torch.randn(batch, 16, LATENT_SIDE, LATENT_SIDE)
    timestep = torch.full((batch,), 500.0)
    optimizer = torch.optim.AdamW(transformer.parameters())

    def training_step() -> None:
        transformer(latents, embeds, pooled, timestep).sample.square().mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def denoising_step() -> None:
        with torch.no_grad():
            transformer(latents[:2], embeds[:2], pooled[:2], timestep[:2])

    return {
        "parameters_m": round(sum(p.numel() for p in transformer.parameters()) / 1e6, 3),
        "training_ms": round(1000 * seconds(training_step, repeats), 1),
        "denoising_ms": round(1000 * seconds(denoising_step, repeats * 8), 2),
    }


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    report = Report("transformer_sizes", "h. transformer sizes: a training step and a 256 px denoising step")
    batch, repeats = (2, 1) if args.smoke else (TRAINING_BATCH, 5)
    rows = {name: measure(sizes, batch, repeats) for name, sizes in candidates().items()}
    run_3 = next(iter(rows.values()))["denoising_ms"]
    report.table(
        ["transformer", "parameters (M)", f"training step, batch {batch} (ms)", "denoising step (ms)", "denoising vs run 3"],
        [[name, row["parameters_m"], row["training_ms"], row["denoising_ms"], round(row["denoising_ms"] / run_3, 2)]
         for name, row in rows.items()],
    )
    report.data.update({"training_batch": batch, "sizes": rows})
    report.finish(args.json)


if __name__ == "__main__":
    main()
