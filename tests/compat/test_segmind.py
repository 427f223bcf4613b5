"""Segmind `POST /v1/stable-diffusion-3-medium-txt2img` (provider-docs 003): the page's example,
each parameter's range and default, each error status."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from latentcast.server.compat.schedulers import SEGMIND_SCHEDULERS
from tests.compat.helpers import changed, image_of, nothing_queued
from tests.support import ServerProcess

SLUG = "stable-diffusion-3-medium-txt2img"
URL = f"/v1/{SLUG}"
HEADERS = {"x-api-key": "YOUR_API_KEY", "Content-Type": "application/json"}  # the page's, unchanged
SMALL = {"img_width": 512, "img_height": 512, "num_inference_steps": 10}
PANDA = (
    "A whimsical and high-resolution highly realistic image of a panda in a vintage cosmonaut suit. The panda is "
    "holding a sign that reads 'I love flying to the moon!' in playful lettering. The panda's helmet has a small "
    "propeller on top and a Indian flag patch, adding to the cosmic vibe. The background features a retro-styled "
    "spaceship with rockets and stars, giving the impression of a thrilling journey through space"
)


async def _txt2img(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post(URL, headers=HEADERS, json=body, timeout=600)


async def _params(client: httpx.AsyncClient, answer: httpx.Response) -> dict[str, Any]:
    return (await client.get(f"/v1/tasks/{answer.headers['x-task-id']}")).json()["params"]


async def test_the_page_example(aliased_server: ServerProcess) -> None:
    data = {
        "prompt": PANDA,
        "negative_prompt": "bad quality, poor quality, doll, disfigured, jpg, toy, bad anatomy, missing limbs, "
        "missing fingers, 3d, cgi",
        "samples": 1,
        "scheduler": "DPM++ 2M",
        "num_inference_steps": 25,
        "guidance_scale": 5,
        "denoise": 1,
        "seed": 468685,
        "img_width": 1024,
        "img_height": 1024,
        "modelsamplingsd3_shift": 3,
        "conditioningsettimesteprange_start": 0.1,
        "conditioningsettimesteprange_stop": 1,
        "base64": False,
    }
    async with httpx.AsyncClient(base_url=aliased_server.base_url, timeout=600) as client:
        answer = await _txt2img(client, data)
        assert answer.status_code == 200, answer.text
        params = await _params(client, answer)
    # "base64": false: the image itself (the page's script would then call .json() on it, which
    # fails on Segmind too)
    assert answer.headers["content-type"] == "image/jpeg"
    assert image_of(answer.content).size == (1024, 1024)
    assert answer.headers["x-seed"] == "468685"
    assert params["scheduler"] == "dpmpp_2m" and params["shift"] == 3.0
    assert (params["num_inference_steps"], params["guidance_scale"], params["seed"]) == (25, 5.0, 468685)


async def test_defaults(client: httpx.AsyncClient) -> None:
    answer = await _txt2img(client, {"prompt": "defaults", **SMALL})
    assert answer.status_code == 200, answer.text
    params = await _params(client, answer)
    assert params["num_images"] == 1 and params["scheduler"] == "dpmpp_2m" and params["shift"] == 3.0
    assert params["guidance_scale"] == 5.0 and params["negative_prompt"] == ""
    seed = int(answer.headers["x-seed"])  # -1: random, and said
    assert 0 <= seed <= 999_999_999_999_999


async def test_base64_json_with_every_sample(client: httpx.AsyncClient) -> None:
    body = {"prompt": "b64", **SMALL, "samples": 2, "seed": 5, "base64": True, "img_width": 520}
    answer = await _txt2img(client, body)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    data = answer.json()
    assert data["seed"] == 5 and len(data["images"]) == 2 and data["image"] == data["images"][0]
    assert all(image_of(image).size == (520, 512) for image in data["images"])  # a multiple of 8, exactly


# every value the page lists, as Segmind spells it: the eleven shown, and the "+19 more" (the rest of
# the AUTOMATIC1111 sampler list the eleven come from); docs/compatibility.md says why each maps where it does
PAGE_SCHEDULERS = [
    "DPM++ 2M", "DPM++ SDE Karras", "DPM++ 2M Karras", "DPM++ 2M SDE Karras", "DPM++ 2M SDE Heun Karras",
    "DPM++ 3M SDE Karras", "LMS Karras", "DPM2 Karras", "DPM2 a Karras", "DPM++ 2S a Karras",
    "DPM++ 2M SDE Exponential",
    "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ SDE", "DPM++ 2M SDE",
    "DPM++ 2M SDE Heun", "DPM++ 2M SDE Heun Exponential", "DPM++ 3M SDE", "DPM++ 3M SDE Exponential", "DPM fast",
    "DPM adaptive", "Restart", "DDIM", "PLMS", "UniPC",
]


def test_the_declared_names_are_the_pages() -> None:
    assert sorted(SEGMIND_SCHEDULERS) == sorted(PAGE_SCHEDULERS) and len(PAGE_SCHEDULERS) == 11 + 19


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)  # the mapping, not the backend, is under test
async def test_every_scheduler_of_the_page_is_accepted_as_its_flow_matching_counterpart(
    client: httpx.AsyncClient,
) -> None:
    # Queued through the v2 queue (the Segmind SDK's `run`), which takes the same request as /v1, and
    # cancelled once its params are read: what runs each flow-matching scheduler through the
    # pipeline is tests/engine/test_schedulers.py, and the page example above runs one end to end.
    for name in PAGE_SCHEDULERS:
        body = {"prompt": f"scheduler {name}", **SMALL, "scheduler": name, "seed": 3}
        answer = await client.post(f"/v2/{SLUG}", headers=HEADERS, json=body)
        assert answer.status_code == 200, f"{name}: {answer.text}"
        task_id = answer.json()["request_id"]
        params = (await client.get(f"/v1/tasks/{task_id}")).json()["params"]
        assert (params["scheduler"], params["shift"]) == (SEGMIND_SCHEDULERS[name], 3.0), name
        cancelled = await client.post(f"/v1/tasks/{task_id}/cancel")
        assert cancelled.status_code in (202, 409), f"{name}: {cancelled.text}"  # 409: it had already ended


async def test_the_shift_reaches_the_scheduler(client: httpx.AsyncClient) -> None:
    body = {"prompt": "shift", **SMALL, "scheduler": "UniPC", "modelsamplingsd3_shift": 7}
    answer = await _txt2img(client, body)
    assert answer.status_code == 200, answer.text
    params = await _params(client, answer)
    assert params["scheduler"] == "unipc" and params["shift"] == 7.0


async def test_accepted_fields_without_an_effect(client: httpx.AsyncClient) -> None:
    body = {"prompt": "range", **SMALL, "denoise": 0.5, "conditioningsettimesteprange_start": 0.2,
            "conditioningsettimesteprange_stop": 0.2}
    assert (await _txt2img(client, body)).status_code == 200


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"prompt": None}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"negative_prompt": ["x"]}, "negative_prompt"),
        ({"samples": 0}, "samples"),
        ({"samples": 5}, "samples"),
        ({"scheduler": "Euler Karras"}, "scheduler"),
        ({"scheduler": "dpm++ 2m"}, "scheduler"),
        ({"scheduler": "dpmpp_2m"}, "scheduler"),
        ({"scheduler": ""}, "scheduler"),
        ({"num_inference_steps": 9}, "num_inference_steps"),
        ({"num_inference_steps": 101}, "num_inference_steps"),
        ({"guidance_scale": 0.9}, "guidance_scale"),
        ({"guidance_scale": 25.5}, "guidance_scale"),
        ({"seed": -2}, "seed"),
        ({"seed": 1_000_000_000_000_000}, "seed"),
        ({"img_width": 504}, "img_width"),
        ({"img_width": 2056}, "img_width"),
        ({"img_width": 516}, "img_width"),
        ({"img_height": 2049}, "img_height"),
        ({"modelsamplingsd3_shift": 0.5}, "modelsamplingsd3_shift"),
        ({"modelsamplingsd3_shift": 11}, "modelsamplingsd3_shift"),
        ({"denoise": 0}, "denoise"),
        ({"denoise": 1.5}, "denoise"),
        ({"conditioningsettimesteprange_start": 0.05}, "conditioningsettimesteprange_start"),
        ({"conditioningsettimesteprange_stop": 1.1}, "conditioningsettimesteprange_stop"),
        ({"conditioningsettimesteprange_start": 0.8, "conditioningsettimesteprange_stop": 0.5},
         "conditioningsettimesteprange_stop"),
        ({"base64": "yes"}, "base64"),
        ({"width": 512}, "width"),
    ],
)
async def test_a_bad_field_is_a_400_naming_it(client: httpx.AsyncClient, change: dict[str, Any], field: str) -> None:
    async with nothing_queued(client):
        answer = await _txt2img(client, changed({"prompt": "refused", **SMALL}, change))
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert field in error["error"] and field in [f["field"] for f in error["fields"]]


async def test_an_unknown_scheduler_says_which_work(client: httpx.AsyncClient) -> None:
    answer = await _txt2img(client, {"prompt": "x", "scheduler": "DPM++ 2M Karass"})
    assert answer.status_code == 400
    error = answer.json()
    assert error["error"] == "scheduler: 'DPM++ 2M Karass' is not a Segmind scheduler; use one of: " + ", ".join(
        SEGMIND_SCHEDULERS
    )
    assert [(f["field"], f["rule"]) for f in error["fields"]] == [("scheduler", "unknown_scheduler")]


async def test_no_json_is_a_400(client: httpx.AsyncClient) -> None:
    answer = await client.post(URL, headers=HEADERS, content=b"prompt=x")
    assert answer.status_code == 400 and "JSON" in answer.json()["error"]


async def test_a_server_without_sd3_medium_is_a_404(bare_server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=bare_server.base_url) as other:
        answer = await _txt2img(other, {"prompt": "x", **SMALL})
        assert answer.status_code == 404
        assert "'stable-diffusion-3-medium' is not served here" in answer.json()["error"]
