"""Every output image carries its generation parameters as AUTOMATIC1111 writes them: read back by
Pillow as any image tool reads them (a PNG's `parameters` text, a JPEG's or WebP's EXIF
UserComment), by `read_info`, and by `latentcast info`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from latentcast.client import AsyncClient, GenerationInfo, read_info
from tests.client.test_cli import latentcast
from tests.support import ServerProcess

PROMPT = "a lighthouse at dusk, oil: thick \"impasto\"\nsecond line, ünïcode"
EXPECTED_TEXT = (
    "a lighthouse at dusk, oil: thick \"impasto\"\nsecond line, ünïcode\n"
    "Negative prompt: fog, rain\n"
    'Steps: 3, Sampler: unipc, CFG scale: 4.5, Seed: 1234, Size: 72x64, Model: "builtin:tiny", Shift: 2.5'
)
USER_COMMENT = 0x9286


async def _generate(server: ServerProcess, tmp_path: Path, output_format: str, **options: object) -> Path:
    async with AsyncClient(server.base_url, timeout=60) as client:
        task = await client.submit(
            PROMPT, negative_prompt="fog, rain", width=72, height=64, num_inference_steps=3, guidance_scale=4.5,
            seed=1234, scheduler="unipc", shift=2.5, output_format=output_format, **options,  # type: ignore[arg-type]
        )
        (path,) = await task.download(tmp_path)
    return path


@pytest.mark.parametrize("output_format", ["png", "jpeg", "webp"])
async def test_each_format_carries_the_parameters(server: ServerProcess, tmp_path: Path, output_format: str) -> None:
    path = await _generate(server, tmp_path, output_format)
    with Image.open(path) as image:
        if output_format == "png":
            text = image.info["parameters"]
        else:
            comment = image.getexif().get_ifd(0x8769)[USER_COMMENT]
            assert comment.startswith(b"UNICODE\0")
            text = comment[8:].decode("utf-16-be")
    assert text == EXPECTED_TEXT
    assert read_info(path) == GenerationInfo(
        prompt=PROMPT, negative_prompt="fog, rain", steps=3, guidance_scale=4.5, seed=1234, width=72, height=64,
        scheduler="unipc", model="builtin:tiny", shift=2.5,
    )


async def test_latentcast_info_prints_them(server: ServerProcess, tmp_path: Path) -> None:
    path = await _generate(server, tmp_path, "png")
    shown = latentcast("info", str(path), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "prompt: a lighthouse at dusk, oil: thick \"impasto\"",
        "second line, ünïcode",
        "negative prompt: fog, rain",
        "steps: 3",
        "guidance: 4.5",
        "seed: 1234",
        "size: 72x64",
        "scheduler: unipc",
        "shift: 2.5",
        "model: builtin:tiny",
    ]


async def test_latentcast_info_json_and_a_batch(server: ServerProcess, tmp_path: Path) -> None:
    async with AsyncClient(server.base_url, timeout=60) as client:
        task = await client.submit("two of them", width=64, height=64, num_inference_steps=2, seed=9, num_images=2,
                                   output_format="webp")
        paths = await task.download(tmp_path)
    shown = latentcast("info", "--json", *map(str, paths), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [(line["file"], line["seed"], line["batch_size"], line["batch_position"]) for line in lines] == [
        (str(paths[0]), 9, 2, 0), (str(paths[1]), 9, 2, 1)
    ]
    assert lines[0] == {
        "file": str(paths[0]), "prompt": "two of them", "negative_prompt": "", "steps": 2, "guidance_scale": 7.0,
        "seed": 9, "width": 64, "height": 64, "scheduler": "flow_match_euler", "model": "builtin:tiny",
        "shift": None, "batch_size": 2, "batch_position": 0,
    }


def test_latentcast_info_on_an_image_without_parameters(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    (tmp_path / "notes.txt").write_text("not an image")
    shown = latentcast("info", "plain.png", "notes.txt", cwd=tmp_path)
    assert shown.returncode == 1 and shown.stdout == ""
    lines = shown.stderr.splitlines()
    assert lines[0] == "latentcast info: plain.png: carries no generation parameters"
    assert lines[1].startswith("latentcast info: notes.txt: cannot read it as an image")


_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


@given(
    prompt=_text.filter(lambda t: "\nNegative prompt: " not in t and not t.startswith("Negative prompt: ")),
    negative=_text,
    model=_text,
    scheduler=st.sampled_from(["flow_match_euler", "dpmpp_2m", "unipc"]),
    shift=st.none() | st.floats(0.5, 10),
)
def test_the_text_reads_back_as_written(prompt: str, negative: str, model: str, scheduler: str, shift: float | None) -> None:
    info = GenerationInfo(
        prompt=prompt, negative_prompt=negative, steps=28, guidance_scale=7.0, seed=2**63 - 1, width=1024, height=768,
        scheduler=scheduler, model=model, shift=shift, batch_size=4, batch_position=3,
    )
    assert GenerationInfo.from_text(info.to_text()) == info
