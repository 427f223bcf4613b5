"""The official openai SDK on AI/ML API's `/v1/images/generations`, as AI/ML API's users call it:
`OpenAI(base_url=".../v1").images.generate(...)`, sync and async, against the real server."""

from __future__ import annotations

import asyncio
import base64
import time

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.compat.helpers import image_of, nothing_queued, task_with_prompt
from tests.support import ServerProcess, collect, types, wait_status

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


async def test_openais_own_options_are_accepted_and_the_model_defaults_to_the_served_one(
    server: ServerProcess, client: httpx.AsyncClient
) -> None:
    # what code written for OpenAI sends: no model, and options that mean nothing to SD3
    result = _sync(server).images.generate(
        prompt="openai defaults", size="64x64", quality="hd", style="vivid", user="user-1234",
        moderation="low", background="opaque", safety_identifier="hash-1", response_format="b64_json",
        extra_body={"num_inference_steps": 2},
    )
    assert result.data is not None and len(result.data) == 1
    assert image_of(result.data[0].b64_json).size == (64, 64)
    task = await task_with_prompt(client, "openai defaults")
    assert task["model"] == "builtin:tiny" and task["status"] == "completed"
    assert result.to_dict()["images"][0]["url"].endswith(f"/v1/files/{task['id']}/0.jpg")  # page 001's shape


async def test_every_model_the_sdk_lists_generates(server: ServerProcess) -> None:
    sdk = _sync(server)
    listed = [model.id for model in sdk.models.list()]
    assert listed == ["builtin:tiny"]
    for name in listed:
        result = sdk.images.generate(model=name, prompt=f"listed {name}", size="64x64", extra_body={"num_inference_steps": 2})
        assert result.data is not None and result.data[0].url is not None
        assert result.to_dict()["images"][0]["width"] == 64


async def test_a_model_not_served_names_the_served_ones(server: ServerProcess, client: httpx.AsyncClient) -> None:
    async with nothing_queued(client):
        with pytest.raises(openai.BadRequestError) as refused:
            _sync(server).images.generate(model="dall-e-3", prompt="not here", size="64x64")
    assert refused.value.param == "model" and refused.value.code == "served_model"
    assert "model 'dall-e-3' is not served here; served models: builtin:tiny, " in refused.value.message


async def test_a_stream_sends_previews_as_partial_images_then_the_image(
    server: ServerProcess, client: httpx.AsyncClient
) -> None:
    stream = _sync(server).images.generate(
        prompt="streamed", size="64x64", stream=True, partial_images=2, extra_body={"num_inference_steps": 30},
    )
    events = await asyncio.to_thread(list, stream)  # the SDK reads the stream as it comes, blocking
    assert [event.type for event in events] == [
        "image_generation.partial_image", "image_generation.partial_image", "image_generation.completed"
    ]
    first, second, done = events
    assert (first.partial_image_index, second.partial_image_index) == (0, 1)
    assert image_of(first.b64_json).format == "JPEG"  # the task's preview: its denoised estimate
    assert (image_of(done.b64_json).format, image_of(done.b64_json).size) == ("JPEG", (64, 64))
    assert done.size == "64x64" and done.output_format == "jpeg"
    # the task is a native one, its file the completed image
    task = await task_with_prompt(client, "streamed")
    assert (await client.get(task["outputs"][0]["url"])).content == base64.b64decode(done.b64_json)


async def test_a_stream_whose_task_is_cancelled_raises_in_the_sdk(
    server: ServerProcess, client: httpx.AsyncClient
) -> None:
    stream = _sync(server).images.generate(
        prompt="streamed, cancelled", size="512x512", stream=True, partial_images=1,
        extra_body={"num_inference_steps": 50},
    )
    reading = asyncio.ensure_future(asyncio.to_thread(list, stream))
    task = await task_with_prompt(client, "streamed, cancelled")
    await wait_status(client, task["id"], {"running"})
    assert (await client.post(f"/v1/tasks/{task['id']}/cancel")).status_code == 202
    with pytest.raises(openai.APIError) as failed:
        await reading
    assert failed.value.message == f"task {task['id']} was cancelled"
