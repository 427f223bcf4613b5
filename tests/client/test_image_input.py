"""The client's and the CLI's picture inputs against the real server: a `Path`, bytes or a PIL
image become the task's `image`/`mask`, and `latentcast generate --image --mask --strength`."""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
from PIL import Image

from latentcast import AsyncClient, Client
from tests.client.test_cli import TASK_LINE, latentcast
from tests.support import ServerProcess


def _png(colour: str, size: tuple[int, int] = (64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _input(server: ServerProcess, task_id: str, token: str, name: str) -> Image.Image:
    served = httpx.get(f"{server.base_url}/v1/tasks/{task_id}/inputs/{name}", params={"token": token}, timeout=30)
    assert served.status_code == 200, served.text
    return Image.open(io.BytesIO(served.content))


async def test_the_async_client_sends_a_path_and_a_pil_mask(server: ServerProcess, tmp_path: Path) -> None:
    path = tmp_path / "in.png"
    path.write_bytes(_png("blue"))
    mask = Image.new("L", (64, 64), 255)
    async with AsyncClient(server.base_url, timeout=60) as client:
        task = await client.submit("client image", image=path, mask=mask, strength=0.5, num_inference_steps=4)
        await task.result()
    assert _input(server, task.id, task.token, "image").getpixel((3, 3)) == (0, 0, 255)
    assert _input(server, task.id, task.token, "mask").getpixel((3, 3)) == 255


def test_the_sync_client_sends_bytes(server: ServerProcess) -> None:
    with Client(server.base_url, timeout=60) as client:
        images = client.run("client bytes", image=_png("green", (72, 80)), num_inference_steps=2)
    assert images[0].image().size == (72, 80)  # the image's own size


def test_generate_with_image_mask_and_strength(server: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "in.png").write_bytes(_png("red"))
    (tmp_path / "mask.png").write_bytes(_png("white"))
    done = latentcast(
        "generate", "cli image", "-o", "out.png", "--steps", "8", "--image", "in.png", "--mask", "mask.png",
        "--strength", "0.5", "--mask-blur", "2", "--server", server.base_url, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"step 4/4 100%", done.stderr), done.stderr  # ceil(0.5 x 8) steps
    match = TASK_LINE.search(done.stderr)
    assert match, done.stderr
    detail = httpx.get(f"{server.base_url}/v1/tasks/{match.group(1)}", timeout=10).json()
    assert detail["input"]["strength"] == 0.5 and detail["params"]["mask_blur"] == 2
    assert Image.open(tmp_path / "out.png").size == (64, 64)
    missing = latentcast("generate", "cli image", "--image", "nowhere.png", "--server", server.base_url, cwd=tmp_path)
    assert missing.returncode == 2 and "--image nowhere.png: no such file" in missing.stderr
