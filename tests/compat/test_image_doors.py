"""Image input through every door that has it: the openai SDK's `images.edit` on `/v1/images/edits`,
Wiro's `inputImage` and Segmind's `image` with `denoise` as its strength. Each makes the native
task it maps to, which says so in its `input`."""

from __future__ import annotations

import base64
import io

import httpx
import openai
import pytest
from openai import OpenAI
from PIL import Image

from tests.compat.helpers import image_of, task_with_prompt
from tests.compat.test_wiro import HEADERS as WIRO_HEADERS
from tests.compat.test_wiro import SLUG as WIRO_SLUG
from tests.support import ServerProcess


def png(size: tuple[int, int] = (64, 64), mode: str = "RGB", colour: object = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def openai_mask() -> bytes:
    """OpenAI's kind: opaque where the image is kept, transparent (the left half) where it is repainted."""
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 32, 64))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


async def test_the_openai_sdks_images_edit_with_a_mask(server: ServerProcess, client: httpx.AsyncClient) -> None:
    sdk = OpenAI(base_url=f"{server.base_url}/v1", api_key="any", timeout=600)
    result = sdk.images.edit(
        image=("in.png", png(), "image/png"), mask=("mask.png", openai_mask(), "image/png"), prompt="openai edit",
        response_format="b64_json", extra_body={"num_inference_steps": 2, "seed": 5},
    )
    assert result.data is not None and len(result.data) == 1
    assert image_of(base64.b64decode(result.data[0].b64_json)).size == (64, 64)  # the image's own size
    task = await task_with_prompt(client, "openai edit")
    assert task["input"]["strength"] == 1.0  # a mask's default: the transparent part is repainted whole
    mask = await client.get(task["input"]["mask"])
    converted = Image.open(io.BytesIO(mask.content))
    assert converted.getpixel((5, 5)) == 255 and converted.getpixel((60, 5)) == 0  # transparent -> white


async def test_the_openai_sdks_images_edit_without_a_mask_gives_urls(server: ServerProcess, client: httpx.AsyncClient) -> None:
    sdk = OpenAI(base_url=f"{server.base_url}/v1", api_key="any", timeout=600)
    result = sdk.images.edit(
        image=("in.png", png((96, 64)), "image/png"), prompt="openai variation", size="64x64", n=2,
        extra_body={"num_inference_steps": 2, "strength": 0.5},
    )
    assert result.data is not None and len(result.data) == 2
    assert image_of((await client.get(result.data[0].url)).content).size == (64, 64)
    task = await task_with_prompt(client, "openai variation")
    assert task["input"]["mask"] is None and task["input"]["strength"] == 0.5


async def test_the_openai_sdk_hears_a_bad_picture_as_a_400_naming_it(server: ServerProcess) -> None:
    sdk = OpenAI(base_url=f"{server.base_url}/v1", api_key="any", timeout=600, max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.images.edit(image=("in.png", b"not a picture", "image/png"), prompt="bad edit")
    assert refused.value.body["param"] == "image" and refused.value.body["code"] == "not_an_image"
    with pytest.raises(openai.BadRequestError) as opaque:
        sdk.images.edit(image=("in.png", png(), "image/png"), mask=("m.png", png(), "image/png"), prompt="bad mask")
    assert opaque.value.body["param"] == "mask" and opaque.value.body["code"] == "mask_alpha"


async def test_segmind_denoise_is_the_strength_of_its_image(server: ServerProcess, client: httpx.AsyncClient) -> None:
    body = {"prompt": "segmind image", "image": base64.b64encode(png()).decode(), "denoise": 0.5,
            "num_inference_steps": 10, "base64": True}
    answer = await client.post("/v1/stable-diffusion-3-medium-txt2img", json=body, timeout=600)
    assert answer.status_code == 200, answer.text
    assert image_of(answer.json()["image"]).size == (64, 64)
    task = await task_with_prompt(client, "segmind image")
    assert task["input"]["strength"] == 0.5
    url = await client.post("/v1/stable-diffusion-3-medium-txt2img", json={**body, "image": "https://example.com/x.png"})
    assert url.status_code == 400 and url.json()["fields"][0]["field"] == "image"


async def test_wiro_input_image_as_a_multipart_file(server: ServerProcess, client: httpx.AsyncClient) -> None:
    fields = {"prompt": "wiro image", "steps": "2", "strength": "0.5"}
    answer = await client.post(
        f"/v1/Run/{WIRO_SLUG}", headers=WIRO_HEADERS, data=fields, files={"inputImage": ("in.png", png(), "image/png")},
    )
    assert answer.json()["result"] is True, answer.text
    task = await task_with_prompt(client, "wiro image")
    assert task["input"]["strength"] == 0.5 and (task["params"]["width"], task["params"]["height"]) == (64, 64)
    other = await client.post(
        f"/v1/Run/{WIRO_SLUG}", headers=WIRO_HEADERS, data=fields, files={"mask": ("m.png", png(), "image/png")},
    )
    assert other.json()["result"] is False and "inputImage" in other.json()["errors"][0]["message"]
