"""g. Does a model trained by `latentcast.server.training.train` draw what the prompt says, and does its live preview show it forming?

Held-out scenes (combinations of background, colour, shape, size and position that training never
saw) go through the worker's own `run_generation`, with a `latent2rgb` preview at every step, as a
live-page viewer gets them. Each final picture is judged by the geometry checker
(`latentcast.server.training.checker`): background colour, object colour, shape. Each step's
preview is compared with the final picture (PSNR, both at the latents' resolution, where the
preview has its detail). Last, the cost of a 256 px step is compared with `builtin:tiny`'s,
interleaved in the same run.

    python -m bench.drawing --model FOLDER                   # 100 held-out prompts at 256 and 512 px, 28 steps
    python -m bench.drawing --model FOLDER --count 20 --sizes 256
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import Report, median, parser

COLOUR_TARGET = 0.90  # background and object colour both right
SHAPE_TARGET = 0.80
STEP_COST_TARGET = 3.0  # the trained model's 256 px step over builtin:tiny's (issue 24)


def main() -> None:
    parse = parser(__doc__.split("\n\n")[0])
    parse.add_argument("--model", required=True, help="a folder written by latentcast.server.training.train")
    parse.add_argument("--count", type=int, default=100, help="held-out scenes (at most 100)")
    parse.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parse.add_argument("--steps", type=int, default=28)
    parse.add_argument("--speed-runs", type=int, default=10, help="256 px runs of each model for the step cost")
    parse.add_argument("--save", type=Path, default=None, help="also write every final picture here")
    args = parse.parse_args()
    if args.smoke:
        args.count, args.sizes, args.steps, args.speed_runs = 2, [256], 4, 1

    from latentcast.server.engine.loader import load_pipeline, quiet_libraries
    from latentcast.server.training.checker import judge, psnr
    from latentcast.server.training.judging import generate, held_out_prompts

    quiet_libraries()
    report = Report("drawing", "g. a trained model: the checker's verdicts on held-out prompts, previews vs final")
    with tempfile.TemporaryDirectory(prefix="latentcast-bench-") as folder:
        model = load_pipeline(args.model, data_dir=Path(folder))
        tiny = load_pipeline("builtin:tiny", data_dir=Path(folder))
        held_out, prompts = zip(*held_out_prompts(args.count), strict=True)
        rows, per_size = [], {}
        for size in args.sizes:
            verdicts, curves = [], []
            for index, (scene, prompt) in enumerate(zip(held_out, prompts, strict=True)):
                final, previews, _ = generate(model, prompt, size, seed=index, steps=args.steps)
                side = size // model.pipe.vae_scale_factor
                curves.append([psnr(preview, final, side) for preview in previews])
                verdicts.append(judge(final, scene))
                if args.save is not None:
                    args.save.mkdir(parents=True, exist_ok=True)
                    final.save(args.save / f"{size}-{index:03d}.png")
            colours = sum(v.background_ok and v.colour_ok for v in verdicts) / len(verdicts)
            shapes = sum(v.shape_ok for v in verdicts) / len(verdicts)
            curve = [sum(c[i] for c in curves) / len(curves) for i in range(args.steps)]
            per_size[str(size)] = {
                "background_ok": sum(v.background_ok for v in verdicts) / len(verdicts),
                "object_colour_ok": sum(v.colour_ok for v in verdicts) / len(verdicts),
                "colours_ok": colours, "shape_ok": shapes, "all_ok": sum(v.ok for v in verdicts) / len(verdicts),
                "preview_psnr_per_step": [round(p, 2) for p in curve],
                "falls_step_by_step": all(b >= a for a, b in zip(curve, curve[1:])),
                "misses": [
                    {"prompt": p, "found": [v.background, v.colour, v.shape]}
                    for p, v in zip(prompts, verdicts, strict=True) if not v.ok
                ],
            }
            cell = per_size[str(size)]
            rows.append([size, len(verdicts), cell["background_ok"], cell["object_colour_ok"], shapes,
                         cell["all_ok"], curve[0], curve[args.steps // 2], curve[-1]])
        report.table(["px", "prompts", "background", "colour", "shape", "all", "psnr step 1", "mid", "last"], rows)
        for size, cell in per_size.items():
            report.line(f"   {size} px preview PSNR per step: {' '.join(f'{p:.1f}' for p in cell['preview_psnr_per_step'])}")
        costs: dict[str, list[float]] = {"builtin:tiny": [], args.model: []}
        for run in range(args.speed_runs):  # interleaved, so a change in the machine's load hits both
            for name, loaded in (("builtin:tiny", tiny), (args.model, model)):
                costs[name].append(generate(loaded, prompts[run % len(prompts)], 256, seed=run, steps=args.steps)[2])
        ratio = median(costs[args.model]) / median(costs["builtin:tiny"])
        report.line(f"   256 px step: {args.model} {1000 * median(costs[args.model]):.1f} ms, "
                    f"builtin:tiny {1000 * median(costs['builtin:tiny']):.1f} ms")
    report.data.update({"sizes": per_size, "steps": args.steps, "count": len(held_out), "step_ms": {
        name: 1000 * median(values) for name, values in costs.items()}})
    for size, cell in per_size.items():
        report.target(f"{size} px: background and object colour right", cell["colours_ok"], COLOUR_TARGET, at_least=True)
        report.target(f"{size} px: shape right", cell["shape_ok"], SHAPE_TARGET, at_least=True)
    report.target("256 px step cost vs builtin:tiny", round(ratio, 3), STEP_COST_TARGET, "x")
    report.finish(args.json)


if __name__ == "__main__":
    main()
