"""`POST /api/generate/sdv3/textToImage` (provider-docs 002), and `/api/generate/sd3/textToImage`,
the path the page's own example calls: the example, each rule, the failure shape."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from latentcast.server.compat.texttoimage import fit
from tests.compat.helpers import changed, image_of, nothing_queued
from tests.support import ServerProcess

URL = "/api/generate/sdv3/textToImage"
SMALL = {"prompt": "a lighthouse", "width": 320, "height": 320}


async def _generate(client: httpx.AsyncClient, body: dict[str, Any], url: str = URL) -> httpx.Response:
    return await client.post(url, json=body, timeout=600)


async def test_the_page_example(aliased_server: ServerProcess) -> None:
    # requests.post(url, headers=headers, data=json.dumps(data)): no Content-Type header at all
    headers = {"Accept": "application/json", "Authorization": "your-auth-token"}
    data = {"prompt": "A lighthouse on a cliff", "height": 1024, "width": 1024}
    async with httpx.AsyncClient(base_url=aliased_server.base_url, timeout=600) as client:
        answer = await client.post("/api/generate/sd3/textToImage", headers=headers, content=json.dumps(data))
        assert answer.status_code == 200, answer.text
        task = (await client.get(f"/v1/tasks/{answer.headers['x-task-id']}")).json()
    body = answer.json()
    assert body["code"] == 0 and body["message"] == "success"
    assert set(body["data"]) == {"image", "seed"}
    image = image_of(body["data"]["image"])
    assert (image.format, image.size) == ("PNG", (1024, 1024))
    assert isinstance(body["data"]["seed"], int) and 1 <= body["data"]["seed"] <= 4_294_967_294
    assert task["params"]["num_inference_steps"] == 28  # the API has no steps field: the model's default


async def test_seed_and_negative_prompt_reach_the_task(client: httpx.AsyncClient) -> None:
    answer = await _generate(client, {**SMALL, "seed": 1050625087, "negative_prompt": "fog"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["seed"] == 1050625087
    params = (await client.get(f"/v1/tasks/{answer.headers['x-task-id']}")).json()["params"]
    assert params["negative_prompt"] == "fog" and params["seed"] == 1050625087


async def test_seed_0_is_random(client: httpx.AsyncClient) -> None:
    answer = await _generate(client, {**SMALL, "seed": 0})
    assert answer.json()["data"]["seed"] > 0


@pytest.mark.parametrize(
    ("box", "ratio", "size"),
    [
        ((1024, 1024), "16:9", (1024, 576)),
        ((1024, 1024), "9:16", (576, 1024)),
        ((1344, 1536), "21:9", (1344, 576)),
        ((640, 640), "9:21", (320, 640)),
        ((1024, 1024), "1:1", (1024, 1024)),
        ((1536, 1024), "3:2", (1536, 1024)),
        ((1024, 1024), "4:5", (832, 1024)),
    ],
)
def test_aspect_ratio_fits_inside_width_and_height(box: tuple[int, int], ratio: str, size: tuple[int, int]) -> None:
    assert fit(*box, ratio) == size


async def test_aspect_ratio_shapes_the_image(client: httpx.AsyncClient) -> None:
    answer = await _generate(client, {**SMALL, "width": 640, "height": 640, "aspect_ratio": "16:9"})
    assert answer.status_code == 200, answer.text
    assert image_of(answer.json()["data"]["image"]).size == (640, 384)


async def test_without_a_served_sd3_large_the_default_is_the_servers_model(client: httpx.AsyncClient) -> None:
    answer = await _generate(client, SMALL)  # sd3-large, the API's default, is not served here
    assert answer.json()["code"] == 0
    assert (await client.get(f"/v1/tasks/{answer.headers['x-task-id']}")).json()["params"]["model"] is None


async def test_model_names_and_turbo(aliased_server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=aliased_server.base_url, timeout=600) as other:
        for model in ("sd3-medium", "sd3-large-turbo", None):
            body = {**SMALL, "negative_prompt": "fog"} | ({"model": model} if model else {})
            answer = await _generate(other, body)
            assert answer.json()["code"] == 0, answer.text
            params = (await other.get(f"/v1/tasks/{answer.headers['x-task-id']}")).json()["params"]
            assert params["model"] == (model or "sd3-large")
            # "This parameter does not work with sd3-large-turbo."
            assert params["negative_prompt"] == ("" if model == "sd3-large-turbo" else "fog")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"prompt": None}, "prompt"),
        ({"prompt": " "}, "prompt"),
        ({"width": None}, "width"),
        ({"height": None}, "height"),
        ({"width": 256}, "width"),
        ({"width": 1600}, "width"),
        ({"height": 330}, "height"),
        ({"width": "320"}, "width"),
        ({"model": "sd4"}, "model"),
        ({"model": "sd3-large"}, "model"),
        ({"aspect_ratio": "7:3"}, "aspect_ratio"),
        ({"seed": -1}, "seed"),
        ({"seed": 4_294_967_295}, "seed"),
        ({"negative_prompt": 3}, "negative_prompt"),
        ({"steps": 20}, "steps"),
    ],
)
async def test_a_bad_field_fails_with_code_minus_1(
    client: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    async with nothing_queued(client):
        answer = await _generate(client, changed(SMALL, change))
    assert answer.status_code == 400, answer.text
    failure = answer.json()
    assert failure["code"] == -1 and failure["data"] is None and field in failure["message"]


async def test_no_json_fails_with_code_minus_1(client: httpx.AsyncClient) -> None:
    answer = await client.post(URL, content=b"{'prompt': 'x'}")
    assert answer.status_code == 400
    assert answer.json()["code"] == -1 and "JSON" in answer.json()["message"]
