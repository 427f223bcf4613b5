"""The official openai SDK on AI/ML API's `/v1/images/generations`, as AI/ML API's users call it:
`OpenAI(base_url=".../v1").images.generate(...)`, sync and async, against the real server."""

from __future__ import annotations

import base64
import time

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.compat.helpers import image_of, nothing_queued, task_with_prompt
from tests.support import ServerProcess, collect, types

KEY = "<YOUR_AIMLAPI_KEY>"  # any key is accepted by a server without keys


def _sync(server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=f"{server.base_url}/v1", api_key=KEY, timeout=600)


async def test_urls_with_n_and_size(server: ServerProcess, client: httpx.AsyncClient) -> None:
    before = time.time()
    result = _sync(server).images.generate(
        model="stable-diffusion-v35-large", prompt="openai urls", n=2, size="96x64", response_format="url",
        extra_body={"num_inference_steps": 2, "seed": 11},  # AI/ML API's own fields, the SDK's way
    )
    assert before - 1 <= result.created <= time.time() + 1
    assert result.data is not None and len(result.data) == 2
    for image in result.data:
        assert image.b64_json is None and image.url is not None
        file = await client.get(image.url)
        assert image_of(file.content).size == (96, 64)
    # page 001's fields are there too, for code that reads them
    extra = result.to_dict()
    assert [image["url"] for image in extra["images"]] == [image.url for image in result.data]
    assert extra["seed"] == 11 and extra["has_nsfw_concepts"] == [False, False]
    # the task is a native one: listed with the request's parameters, its events replayed to the end
    task = await task_with_prompt(client, "openai urls")
    assert (task["params"]["num_images"], task["params"]["width"], task["params"]["height"]) == (2, 96, 64)
    assert types(await collect(server.ws_url, task["id"], None))[-1] == "task_postprocess_end"


async def test_base64_with_the_async_client(server: ServerProcess) -> None:
    async with AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key=KEY, timeout=600) as client:
        result = await client.images.generate(
            model="stable-diffusion-v3-medium", prompt="openai base64", n=1, size="64x128",
            response_format="b64_json", output_format="png", extra_body={"num_inference_steps": 2},
        )
    assert result.data is not None and len(result.data) == 1
    image = result.data[0]
    assert image.url is None and image.b64_json is not None
    assert (image_of(image.b64_json).format, image_of(image.b64_json).size) == ("PNG", (64, 128))
    # page 000's fields are there too: the same image
    extra = result.to_dict()
    assert extra["output"]["choices"] == [{"image_base64": image.b64_json}]
    assert extra["args"]["size"] == "64x128" and extra["args"]["n"] == 1
    assert base64.b64decode(image.b64_json)[:4] == b"\x89PNG"


async def test_a_size_the_model_cannot_make_is_refused_through_the_sdk(
    server: ServerProcess, client: httpx.AsyncClient
) -> None:
    async with nothing_queued(client):
        with pytest.raises(openai.BadRequestError) as refused:
            _sync(server).images.generate(model="stable-diffusion-v3-medium", prompt="too wide", size="1792x1024")
    error = refused.value
    assert error.status_code == 400 and error.param == "size" and error.code == "size"
    assert "'1792x1024' is not a size this model makes" in str(error)  # the message, not only "Error code: 400"
    # AI/ML API's own error fields stay, for code written against them
    body = error.response.json()
    assert body["statusCode"] == 400 and body["message"].startswith("Body validation error! size:")
    assert [field["field"] for field in body["meta"]] == ["size"]


async def test_an_option_this_api_lacks_is_named_through_the_async_sdk(server: ServerProcess) -> None:
    async with AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key=KEY) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.images.generate(model="stable-diffusion-v3-medium", prompt="hd", quality="hd")
    assert refused.value.param == "quality" and "quality: unknown field" in refused.value.message
