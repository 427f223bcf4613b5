"""1b. Preview cost per method, per step, per latent size.

What the step callback spends on one preview, measured the way the runner calls it: the denoised
estimate from two latents (`denoised_estimate`), the previewer (`latent2rgb`, `taesd`, `vae`), and
the JPEG (or WebP) encode. Latent sizes are the image's / 8: 32x32 (256 px), 64x64 (512 px), 128x128
(1024 px). `vae` is the builtin model's own decoder (tiny; a real SD3 VAE costs orders of magnitude
more, see docs/observability.md); `taesd` uses `--taesd PATH` when given, else an AutoencoderTiny
with taesd3's architecture (16 latent channels) and random weights, which costs exactly what the
real weights cost.

    python -m bench.previews
    python -m bench.previews --taesd /path/to/taesd3 --formats jpeg webp
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Report, median, parser, percentile
from latentcast.wire import PREVIEW_FORMATS, PREVIEW_METHODS

TARGET_MS = 2.0  # latent2rgb + encode at a 128x128 latent


def taesd_folder(given: Path | None, scratch: Path) -> tuple[Path, str]:
    if given is not None:
        return given, f"weights from {given}"
    from diffusers import AutoencoderTiny

    folder = scratch / "taesd3-architecture"
    AutoencoderTiny(latent_channels=16, scaling_factor=1.0, shift_factor=0.0).save_pretrained(folder)
    return folder, "taesd3 architecture, random weights"


def measure(previewer: Any, fmt: str, latent: int, repeats: int, budget: float) -> list[float]:
    import torch

    from latentcast.server.engine.previews import denoised_estimate, encode_image

    generator = torch.Generator().manual_seed(0)
    previous = torch.randn(1, 16, latent, latent, generator=generator)
    current = previous + 0.1 * torch.randn(1, 16, latent, latent, generator=generator)
    times = []
    deadline = time.perf_counter() + budget
    with torch.inference_mode():
        for index in range(repeats + 1):
            began = time.perf_counter()
            x0 = denoised_estimate(previous, current, 0.8, 0.75)
            image = previewer(x0)[0]
            encode_image(image, fmt)
            if index:  # the first call pays one-off costs
                times.append(time.perf_counter() - began)
            if time.perf_counter() > deadline and len(times) >= 3:
                break
    return times


def main() -> None:
    parse = parser(__doc__.split("\n\n")[0])
    parse.add_argument("--latents", type=int, nargs="+", default=[32, 64, 128], help="latent sides (image / 8)")
    parse.add_argument("--methods", nargs="+", default=[m for m in PREVIEW_METHODS if m != "none"])
    parse.add_argument("--formats", nargs="+", default=list(PREVIEW_FORMATS))
    parse.add_argument("--repeats", type=int, default=200, help="calls per cell (fewer for slow methods: 10 s budget)")
    parse.add_argument("--taesd", type=Path, default=None, help="an AutoencoderTiny (taesd3) folder")
    args = parse.parse_args()
    if args.smoke:
        args.latents, args.repeats, args.formats = [8], 2, ["jpeg"]
    import torch

    from latentcast.server.engine.loader import load_pipeline, quiet_libraries
    from latentcast.server.engine.previews import make_previewer

    quiet_libraries()
    report = Report("previews", "1b. preview cost per step: estimate + previewer + encode")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="latentcast-bench-") as folder:
        pipe = load_pipeline("builtin:tiny", data_dir=Path(folder)).pipe
        taesd_path, taesd_note = taesd_folder(args.taesd, Path(folder)) if "taesd" in args.methods else (None, "")
        rows = []
        for method in args.methods:
            previewer = make_previewer(method, pipe, taesd_path)
            for latent in args.latents:
                for fmt in args.formats:
                    budget = 2.0 if args.smoke else 10.0
                    times = measure(previewer, fmt, latent, args.repeats, budget)
                    size = previewer(torch.zeros(1, 16, latent, latent))[0].size
                    cell = {
                        "method": method, "latent": latent, "image": latent * 8, "preview_px": list(size),
                        "format": fmt, "calls": len(times), "median_ms": 1000 * median(times),
                        "p90_ms": 1000 * percentile(times, 90),
                    }
                    results.append(cell)
                    rows.append([method, f"{latent}x{latent}", f"{size[0]}x{size[1]}", fmt, len(times),
                                 cell["median_ms"], cell["p90_ms"]])
        report.table(["method", "latent", "preview", "format", "calls", "median ms", "p90 ms"], rows)
        if taesd_note:
            report.line(f"   taesd: {taesd_note}")
    report.data["cells"] = results
    target = next(
        (c for c in results if c["method"] == "latent2rgb" and c["latent"] == 128 and c["format"] == "jpeg"), None
    )
    if target is not None:
        report.target("latent2rgb + jpeg at a 128x128 latent", round(target["median_ms"], 3), TARGET_MS, " ms")
    report.finish(args.json)


if __name__ == "__main__":
    main()
