"""A strip of one task's live previews, step 1 to the last, then its finished picture: a scene forming.

    python -m latentcast.server.training.strip --out docs/screenshots/preview-strip.png

The task runs through the worker's own `run_generation` with a `latent2rgb` preview every step, as
a viewer of the live page receives them (server.training.judging.generate), on the model
`latentcast serve` runs by default. Each preview is drawn at the same size as the picture, scaled
smoothly from the latent size it carries, as the pages draw it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

CELL = 112  # pixels a side for each step
COLUMNS = 10
LABEL = 16  # the strip of each cell under the picture that names its step
BACKGROUND = (20, 23, 31)
INK = (200, 205, 220)


def strip(previews: list[Image.Image], final: Image.Image, *, columns: int = COLUMNS) -> Image.Image:
    """The previews in order, then the final picture, `columns` to a row, each named by its step."""
    cells = [(str(step), image) for step, image in enumerate(previews, start=1)] + [("final", final)]
    rows = -(-len(cells) // columns)
    sheet = Image.new("RGB", (columns * CELL, rows * (CELL + LABEL)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for index, (name, image) in enumerate(cells):
        left, top = (index % columns) * CELL, (index // columns) * (CELL + LABEL)
        sheet.paste(image.convert("RGB").resize((CELL - 4, CELL - 4), Image.Resampling.BICUBIC), (left + 2, top + 2))
        draw.text((left + 4, top + CELL), name, fill=INK)
    return sheet


def main(argv: list[str] | None = None) -> None:
    from latentcast.server.engine.loader import load_pipeline, quiet_libraries
    from latentcast.server.tasks.catalog import DEFAULT_MODEL
    from latentcast.server.training.judging import generate

    parser = argparse.ArgumentParser(prog="python -m latentcast.server.training.strip", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--prompt", default="a large red circle on a blue background, top left")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    quiet_libraries()
    with tempfile.TemporaryDirectory(prefix="latentcast-strip-") as folder:
        model = load_pipeline(args.model, data_dir=Path(folder))
        final, previews, _ = generate(model, args.prompt, args.size, seed=args.seed, steps=args.steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    strip(previews, final).save(args.out)
    print(f"{args.out}: {len(previews)} previews and the final picture of {args.prompt!r} (seed {args.seed})")


if __name__ == "__main__":
    main()
