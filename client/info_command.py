"""`latentcast info FILE...`: the generation parameters an output image carries.

    $ latentcast info out.png
    prompt: a lighthouse at dusk
    negative prompt: blurry
    steps: 20
    ...

Reads the files alone (no server). `--json` prints each file's parameters as one JSON object per
line. Exit codes: 0 every file had parameters; 1 one had none or could not be read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from PIL import UnidentifiedImageError

from latentcast.client.image_info import GenerationInfo, read_info

# The fields in the order a person reads them, with the words `info` shows.
_LABELS = {
    "prompt": "prompt",
    "negative_prompt": "negative prompt",
    "steps": "steps",
    "guidance_scale": "guidance",
    "seed": "seed",
    "size": "size",
    "scheduler": "scheduler",
    "shift": "shift",
    "model": "model",
    "batch": "batch",
}


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    info = commands.add_parser(
        "info",
        help="show the generation parameters an image carries",
        description="Print the prompt and settings written into a Latentcast (or AUTOMATIC1111) image.",
    )
    info.add_argument("files", nargs="+", type=Path, metavar="FILE", help="PNG, JPEG or WebP images")
    info.add_argument("--json", action="store_true", help="one JSON object per file, a line each")
    info.set_defaults(run=run_info)


def run_info(args: argparse.Namespace) -> int:
    failed = False
    for index, path in enumerate(args.files):
        try:
            info = read_info(path)
        except (OSError, UnidentifiedImageError) as error:
            print(f"latentcast info: {path}: cannot read it as an image ({error})", file=sys.stderr)
            failed = True
            continue
        if info is None:
            print(f"latentcast info: {path}: carries no generation parameters", file=sys.stderr)
            failed = True
        elif args.json:
            print(json.dumps({"file": str(path), **dataclasses.asdict(info)}, ensure_ascii=False))
        else:
            if len(args.files) > 1:
                print(("\n" if index else "") + f"{path}:")
            for label, value in _readable(info).items():
                print(f"{label}: {value}")
    return 1 if failed else 0


def _readable(info: GenerationInfo) -> dict[str, object]:
    values: dict[str, object] = {
        **dataclasses.asdict(info),
        "size": f"{info.width}x{info.height}",
        "shift": "the model's own" if info.shift is None else info.shift,
        "batch": f"image {info.batch_position + 1} of {info.batch_size}",
    }
    return {label: values[field] for field, label in _LABELS.items() if field != "batch" or info.batch_size > 1}
