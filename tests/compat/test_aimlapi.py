"""AI/ML API `POST /v1/images/generations` (provider-docs 000, 001): each page's examples and its
documented response shape, each rule, each error shape. (The openai SDK's calls: test_openai_sdk.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.compat.helpers import changed, image_of, nothing_queued
from tests.support import ServerProcess, collect, types

URL = "/v1/images/generations"
# the headers every example on the pages sends (the key is the page's placeholder, unchanged)
HEADERS = {"Authorization": "Bearer <YOUR_AIMLAPI_KEY>", "Content-Type": "application/json"}
T_REX = "A T-Rex relaxing on a beach, lying on a sun lounger and wearing sunglasses."
MEDIUM, LARGE = "stable-diffusion-v3-medium", "stable-diffusion-v35-large"
SMALL = {"model": MEDIUM, "image_size": {"width": 64, "height": 64}, "num_inference_steps": 2}
# what every answer carries for the openai SDK, beside the page's own fields
OPENAI_FIELDS = {"created", "data"}


async def _generate(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post(URL, headers=HEADERS, json=body, timeout=600)


def _check_page_000(data: dict[str, Any], prompt: str, size: tuple[int, int], steps: int) -> None:
    """Page 000's documented response: every field, with its documented type."""
    page = {"status", "prompt", "model", "model_owner", "tags", "num_returns", "args", "subjobs", "output"}
    assert set(data) == page | OPENAI_FIELDS
    assert isinstance(data["status"], str) and isinstance(data["model_owner"], str) and data["model"] == MEDIUM
    assert data["prompt"] == [prompt] and isinstance(data["tags"], dict) and data["subjobs"] == []
    choices = data["output"]["choices"]
    assert data["num_returns"] == len(choices) == len(data["data"])
    assert data["args"] == {"model": MEDIUM, "prompt": prompt, "n": len(choices), "steps": steps,
                            "size": f"{size[0]}x{size[1]}"}
    assert all(set(choice) == {"image_base64"} and image_of(choice["image_base64"]).size == size for choice in choices)


async def _check_page_001(client: httpx.AsyncClient, data: dict[str, Any], size: tuple[int, int], kind: str) -> None:
    """Page 001's documented response, and its images."""
    assert set(data) == {"images", "timings", "seed", "has_nsfw_concepts", "prompt"} | OPENAI_FIELDS
    assert isinstance(data["seed"], int) and data["seed"] >= 1
    assert isinstance(data["timings"]["inference"], float) and data["timings"]["inference"] > 0
    assert data["has_nsfw_concepts"] == [False] * len(data["images"])
    for image in data["images"]:
        assert (image["width"], image["height"], image["content_type"]) == (*size, f"image/{kind}")
        file = await client.get(image["url"])
        assert file.headers["content-type"] == f"image/{kind}"
        assert image_of(file.content).size == size
    assert data["data"] == [{"url": image["url"]} for image in data["images"]]


# -- the pages' examples, as the HTTP calls they make -------------------------------------------


@pytest.fixture
async def examples(aliased_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=aliased_server.base_url, timeout=600) as client:
        yield client


async def test_page_000_javascript_example_defaults(examples: httpx.AsyncClient) -> None:
    # body: {model, prompt}: square_hd (1024x1024), 28 steps, JPEG
    answer = await _generate(examples, {"model": MEDIUM, "prompt": T_REX})
    assert answer.status_code == 201, answer.text
    data = answer.json()
    _check_page_000(data, T_REX, (1024, 1024), 28)
    assert image_of(data["output"]["choices"][0]["image_base64"]).format == "JPEG"
    task = (await examples.get(f"/v1/tasks/{answer.headers['x-task-id']}")).json()
    assert task["params"]["num_inference_steps"] == 28 and task["params"]["guidance_scale"] == 5.0


@pytest.mark.parametrize("prompt", [T_REX, T_REX + " Realistic photo."], ids=["python", "javascript"])
async def test_page_000_landscape_examples(examples: httpx.AsyncClient, prompt: str) -> None:
    answer = await _generate(examples, {"prompt": prompt, "model": MEDIUM, "image_size": "landscape_16_9"})
    assert answer.status_code == 201, answer.text  # the Python example's raise_for_status passes
    _check_page_000(answer.json(), prompt, (1024, 576), 28)  # "the following 1024x576 image"


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)  # a 40-step 1024x576 run: the shape, not the backend
async def test_page_001_example_on_a_default_server(server: ServerProcess, client: httpx.AsyncClient) -> None:
    # served by default: the page's example runs with only the host changed
    body = {"prompt": T_REX, "model": LARGE, "image_size": "landscape_16_9", "num_inference_steps": 40}
    answer = await _generate(client, body)
    assert answer.status_code == 201, answer.text
    data = answer.json()  # the page's "Response"
    assert data["prompt"] == T_REX
    await _check_page_001(client, data, (1024, 576), "jpeg")
    task = (await client.get(f"/v1/tasks/{answer.headers['x-task-id']}")).json()
    assert task["params"]["num_inference_steps"] == 40 and task["params"]["guidance_scale"] == 3.5


# -- what a request may ask for -----------------------------------------------------------------


async def test_every_option_reaches_the_task(server: ServerProcess, client: httpx.AsyncClient) -> None:
    body = {
        **SMALL,
        "model": LARGE,
        "prompt": "options",
        "negative_prompt": "blurry",
        "image_size": {"width": 96, "height": 64},
        "guidance_scale": 3,
        "num_images": 2,
        "seed": 42,
        "output_format": "png",
        "enable_safety_checker": False,
        "prompt_expansion": True,
    }
    answer = await _generate(client, body)
    assert answer.status_code == 201, answer.text
    data = answer.json()
    assert data["seed"] == 42 and data["has_nsfw_concepts"] == [False, False]
    await _check_page_001(client, data, (96, 64), "png")
    task_id = answer.headers["x-task-id"]
    params = (await client.get(f"/v1/tasks/{task_id}")).json()["params"]
    assert params | {"prompt": None} == params | {
        "prompt": None, "negative_prompt": "blurry", "width": 96, "height": 64, "guidance_scale": 3.0,
        "num_images": 2, "seed": 42, "output_format": "png", "num_inference_steps": 2,
    }
    # a compat task is a task like any other: listed, and its events replay to the end
    listed = (await client.get("/v1/tasks", params={"limit": 200})).json()["data"]
    assert task_id in [t["id"] for t in listed]
    events = await collect(server.ws_url, task_id, None)
    assert types(events)[0] == "task_queue" and types(events)[-1] == "task_postprocess_end"


async def test_same_seed_same_images(client: httpx.AsyncClient) -> None:
    images = []
    for _ in range(2):
        data = (await _generate(client, {**SMALL, "prompt": "again", "seed": 9})).json()
        images.append((await client.get(data["data"][0]["url"])).content)
    assert images[0] == images[1]


async def test_size_object_defaults(client: httpx.AsyncClient) -> None:
    body = {**SMALL, "prompt": "tall", "image_size": {"width": 64}, "num_inference_steps": 1}
    answer = await _generate(client, body)
    assert answer.status_code == 201, answer.text
    _check_page_000(answer.json(), "tall", (64, 768), 1)


# -- refusals: 400 "Body validation error!", naming the field; nothing queued ------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model": 3}, "model"),
        ({"prompt": None}, "prompt"),
        ({"prompt": "x" * 4001}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"negative_prompt": 5}, "negative_prompt"),
        ({"image_size": "huge"}, "image_size"),
        ({"image_size": ["square"]}, "image_size"),
        ({"image_size": {"width": 100, "height": 64}}, "image_size.width"),
        ({"image_size": {"width": 32, "height": 64}}, "image_size.width"),
        ({"image_size": {"width": 64, "height": 1568}}, "image_size.height"),
        ({"image_size": {"width": 64, "depth": 64}}, "image_size.depth"),
        ({"guidance_scale": 0.5}, "guidance_scale"),
        ({"guidance_scale": 21}, "guidance_scale"),
        ({"guidance_scale": "5"}, "guidance_scale"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"num_inference_steps": 51}, "num_inference_steps"),
        ({"num_inference_steps": 2.5}, "num_inference_steps"),
        ({"num_images": 0}, "num_images"),
        ({"num_images": 5}, "num_images"),
        ({"seed": 0}, "seed"),
        ({"seed": -3}, "seed"),
        ({"seed": 2**63}, "seed"),
        ({"output_format": "webp"}, "output_format"),
        ({"enable_safety_checker": "yes"}, "enable_safety_checker"),
        ({"prompt_expansion": 1}, "prompt_expansion"),
        ({"n": 5}, "n"),
        ({"n": 2, "num_images": 2}, "n"),
        ({"size": "100x64", "image_size": None}, "size"),
        ({"size": "1792x1024", "image_size": None}, "size"),
        ({"size": "1024", "image_size": None}, "size"),
        ({"size": "512x512"}, "size"),  # and image_size: one or the other
        ({"response_format": "b64"}, "response_format"),
        ({"quality": 1}, "quality"),
        ({"user": ["me"]}, "user"),
        ({"background": "transparent"}, "background"),
        ({"partial_images": 4}, "partial_images"),
        ({"stream": "yes"}, "stream"),
    ],
)
async def test_a_bad_field_is_refused(client: httpx.AsyncClient, change: dict[str, Any], field: str) -> None:
    async with nothing_queued(client):
        answer = await _generate(client, changed({**SMALL, "prompt": "refused"}, change))
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["statusCode"] == 400
    assert error["message"].startswith("Body validation error!") and field in error["message"]
    assert field in [f["field"] for f in error["meta"]]
    # what the openai SDK reads: the same message, and the (first) field as `param`
    assert error["error"]["message"] == error["message"] and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["param"] == error["meta"][0]["field"]


async def test_a_model_not_served_is_a_clear_400(bare_server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=bare_server.base_url) as other:
        answer = await _generate(other, {**SMALL, "prompt": "x", "model": LARGE})
    assert answer.status_code == 400
    error = answer.json()
    assert error == {"statusCode": 400, "message": error["message"], "error": {
        "message": error["message"], "type": "invalid_request_error", "param": "model", "code": "served_model"}}
    assert "'stable-diffusion-v35-large' is not served here" in error["message"]
    assert "house-model" in error["message"]  # it lists what is served


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]"])
async def test_a_body_that_is_no_json_object_is_refused(client: httpx.AsyncClient, raw: bytes) -> None:
    answer = await client.post(URL, headers=HEADERS, content=raw)
    assert answer.status_code == 400
    assert answer.json()["statusCode"] == 400 and "JSON" in answer.json()["message"]


async def test_any_key_or_none_is_accepted_without_configured_keys(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer whatever"}, {"Authorization": "Basic x"}):
        answer = await client.post(URL, headers=headers, json={**SMALL, "prompt": "open", "num_inference_steps": 1})
        assert answer.status_code == 201, answer.text
