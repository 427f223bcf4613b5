"""The official Segmind SDK (`segmind` on PyPI) against the real server, as its users call it:
`SegmindClient(base_url=".../v1")`, then `run_sync` (one blocking `/v1` call) or `run` and
`submit_async` (the `/v2` queue: submit, poll the status, read the result)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from segmind import InferenceFailed, SegmindClient, SegmindError

from tests.compat.helpers import image_of, nothing_queued, task_with_prompt
from tests.support import ServerProcess, collect, types, wait_status

SLUG = "stable-diffusion-3-medium-txt2img"
SMALL = {"img_width": 512, "img_height": 512, "num_inference_steps": 10}
# long enough to be caught running and queued behind: seconds per task, cancelled by the test
LONG = {"img_width": 1024, "img_height": 1024, "num_inference_steps": 100}


def _sdk(server: ServerProcess) -> SegmindClient:
    # the SDK's 30 s request timeout is too short for run_sync on a busy 2-core machine
    return SegmindClient(api_key="YOUR_API_KEY", base_url=f"{server.base_url}/v1", timeout=600)


async def test_run_sync_returns_the_image(server: ServerProcess) -> None:
    response = _sdk(server).run_sync(SLUG, prompt="sdk run_sync", seed=7, **SMALL)
    assert response.headers["content-type"] == "image/jpeg" and response.headers["x-seed"] == "7"
    assert image_of(response.content).size == (512, 512)


async def test_run_queues_the_task_and_returns_its_output(server: ServerProcess, client: httpx.AsyncClient) -> None:
    result = await asyncio.to_thread(_sdk(server).run, SLUG, prompt="sdk run", seed=8, **SMALL)
    assert result["status"] == "COMPLETED" and result["seed"] == 8
    assert isinstance(result["metrics"]["inference_time"], float) and result["metrics"]["inference_time"] > 0
    assert image_of((await client.get(result["output"])).content).size == (512, 512)
    # the request id is a native task: listed, and its events replay from task_queue to the end
    task = await task_with_prompt(client, "sdk run")
    assert task["id"] == result["request_id"] and task["status"] == "completed"
    events = await collect(server.ws_url, task["id"], None)
    assert types(events)[0] == "task_queue" and types(events)[-1] == "task_postprocess_end"


async def test_several_samples_are_a_list_of_urls(server: ServerProcess, client: httpx.AsyncClient) -> None:
    job = _sdk(server).submit_async(SLUG, prompt="sdk samples", samples=2, **SMALL)
    result = await asyncio.to_thread(job.wait, timeout=300, interval=0.05)
    assert len(result["output"]) == 2
    for url in result["output"]:
        assert image_of((await client.get(url)).content).size == (512, 512)


async def test_status_is_live_and_a_cancelled_task_fails(server: ServerProcess, client: httpx.AsyncClient) -> None:
    sdk = _sdk(server)
    running = asyncio.ensure_future(asyncio.to_thread(sdk.run, SLUG, prompt="sdk cancelled", **LONG))
    first = await task_with_prompt(client, "sdk cancelled")
    behind = sdk.submit_async(SLUG, prompt="sdk behind", **LONG)
    assert behind.submit_response["status"] == "QUEUED"
    await wait_status(client, first["id"], {"running"})
    assert behind.status()["status"] == "QUEUED"  # the one worker is busy with the first

    # a task cancelled through the native API is Segmind's FAILED, with the reason
    assert (await client.post(f"/v1/tasks/{first['id']}/cancel")).status_code == 202
    with pytest.raises(InferenceFailed) as failed:
        await running
    assert failed.value.detail == f"task {first['id']} was cancelled"
    answer = await client.get(f"/v2/requests/{first['id']}", headers={"x-api-key": "YOUR_API_KEY"})
    assert answer.status_code == 422  # as Segmind answers a FAILED request
    assert answer.json()["status"] == "FAILED" and answer.json()["output"] is None

    await wait_status(client, behind.request_id, {"running"})
    assert behind.status()["status"] == "PROCESSING"
    assert behind.result()["output"] is None  # not done yet
    assert (await client.post(f"/v1/tasks/{behind.request_id}/cancel")).status_code == 202
    with pytest.raises(InferenceFailed):
        await asyncio.to_thread(behind.wait, timeout=120, interval=0.05)
    assert behind.status() == {
        "status": "FAILED", "request_id": behind.request_id, "metrics": {},
        "error": f"task {behind.request_id} was cancelled",
        "status_url": behind.status_url, "response_url": behind.response_url,
    }


@pytest.mark.parametrize(
    ("slug", "params", "status", "words"),
    [
        (SLUG, {"samples": 9}, 400, "samples"),
        (SLUG, {"img_width": 100}, 400, "img_width"),
        (SLUG, {"base64": True}, 400, "base64: the v2 queue answers with image URLs"),
        ("sdxl1.0-txt2img", {}, 404, "'sdxl1.0-txt2img' is not served here"),
    ],
)
async def test_a_refused_run_says_why(
    server: ServerProcess, client: httpx.AsyncClient, slug: str, params: dict[str, object], status: int, words: str
) -> None:
    async with nothing_queued(client):
        with pytest.raises(SegmindError) as refused:
            _sdk(server).run(slug, prompt="sdk refused", **params)
    assert refused.value.status == status and words in str(refused.value.detail)


async def test_an_unknown_request_is_not_found(client: httpx.AsyncClient) -> None:
    for url in ("/v2/requests/no-such-request/status", "/v2/requests/no-such-request"):
        answer = await client.get(url, headers={"x-api-key": "YOUR_API_KEY"})
        assert answer.status_code == 404 and answer.json() == {"error": "no request 'no-such-request'"}


async def test_a_full_queue_is_a_429(full_server: ServerProcess) -> None:
    with pytest.raises(SegmindError) as refused:
        _sdk(full_server).run(SLUG, prompt="sdk full", **SMALL)
    assert refused.value.status == 429 and "the queue holds 0 tasks" in str(refused.value.detail)
