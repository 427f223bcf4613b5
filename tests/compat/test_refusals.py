"""What every provider answers when the server cannot do the work: queue full, too slow, the task
cancelled or failed, and the client gone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from latentcast.server.compat import aimlapi, segmind, texttoimage, wiro
from latentcast.server.compat.common import Refusal
from tests.compat.helpers import count_tasks, task_with_prompt
from tests.support import ServerProcess, collect, types, wait_status

# for each synchronous provider a request that runs for seconds (so the tests can hang up or cancel
# mid-run), and the status and body of its refusals
SYNC = {
    "aimlapi": ("/v1/images/generations", {"model": "stable-diffusion-v3-medium", "image_size": "square_hd",
                                            "num_inference_steps": 50}),
    "segmind": ("/v1/stable-diffusion-3-medium-txt2img", {"img_width": 1024, "img_height": 1024,
                                                          "num_inference_steps": 100}),
    "texttoimage": ("/api/generate/sdv3/textToImage", {"width": 1024, "height": 1024}),
}


# for each: seconds of work, so that it is still running when its client gives up
HANG_UP = {
    "aimlapi": ("/v1/images/generations", {"model": "stable-diffusion-v3-medium", "image_size": "square",
                                            "num_inference_steps": 40}),
    "segmind": ("/v1/stable-diffusion-3-medium-txt2img", {"img_width": 512, "img_height": 512,
                                                          "num_inference_steps": 40}),
    "texttoimage": ("/api/generate/sdv3/textToImage", {"width": 512, "height": 512}),
}


def _says(provider: str, body: dict[str, Any], status: int, words: str) -> None:
    """The refusal is in `provider`'s shape and says `words`."""
    if provider == "aimlapi":
        assert body["statusCode"] == status and words in body["message"] and set(body) >= {"error", "message"}
    elif provider == "segmind":
        assert words in body["error"]
    elif provider == "texttoimage":
        assert body["code"] == -1 and body["data"] is None and words in body["message"]
    else:
        raise AssertionError(provider)


async def test_queue_full(full_server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=full_server.base_url) as client:
        for provider, (url, body) in SYNC.items():
            answer = await client.post(url, json={"prompt": "full", **body})
            assert answer.status_code == 429 and answer.headers["retry-after"] == "5", provider
            _says(provider, answer.json(), 429, "the queue holds 0 tasks")
        run = await client.post("/v1/Run/stabilityai/stable-diffusion-3-medium", json={"prompt": "full"})
        assert run.status_code == 200
        assert run.json() == {"result": False, "errors": [
            {"code": 96, "message": "the queue holds 0 tasks; try again later"}]}
        assert await count_tasks(client) == 0


async def test_too_slow_is_a_timeout_and_cancels_the_task(start_server: Callable[..., ServerProcess]) -> None:
    slow = start_server("--compat-wait", "1.5", "--preview-min-interval", "0")
    async with httpx.AsyncClient(base_url=slow.base_url, timeout=120) as client:
        for provider, (url, body) in SYNC.items():
            answer = await client.post(url, json={"prompt": f"slow {provider}", **body})
            assert answer.status_code == 504, (provider, answer.text)
            _says(provider, answer.json(), 504, "not done after 1.5 s; it has been cancelled")
            task = await task_with_prompt(client, f"slow {provider}")
            await wait_status(client, task["id"], {"cancelled"})


async def test_a_client_that_hangs_up_leaves_its_task_running_to_the_end(
    server: ServerProcess, client: httpx.AsyncClient
) -> None:
    """As on the providers, whose pages say nothing of cancelling on a disconnect: a dashboard or a
    page may be following the task, and its files stay at their URLs."""
    for provider, (url, body) in HANG_UP.items():
        prompt = f"hang up {provider}"
        async with httpx.AsyncClient(base_url=client.base_url, timeout=120) as impatient:
            waiting = asyncio.ensure_future(impatient.post(url, json={"prompt": prompt, **body}))
            task = await task_with_prompt(client, prompt)
            await wait_status(client, task["id"], {"running"})
            waiting.cancel()  # gives up: its connection closes
            with pytest.raises(asyncio.CancelledError):
                await waiting
        events = await collect(server.ws_url, task["id"], None, previews="none")
        assert types(events)[-1] == "task_postprocess_end", (provider, events[-1])
        done = (await client.get(f"/v1/tasks/{task['id']}")).json()
        assert done["status"] == "completed" and len(done["outputs"]) == 1
        assert (await client.get(done["outputs"][0]["url"])).status_code == 200


async def test_a_task_cancelled_while_waited_for(client: httpx.AsyncClient) -> None:
    for provider, (url, body) in SYNC.items():
        prompt = f"cancelled {provider}"
        waiting = asyncio.ensure_future(client.post(url, json={"prompt": prompt, **body}))
        task = await task_with_prompt(client, prompt)
        assert (await client.post(f"/v1/tasks/{task['id']}/cancel")).status_code == 202
        answer = await waiting
        assert answer.status_code == 500, provider
        _says(provider, answer.json(), 500, f"task {task['id']} was cancelled")


@pytest.mark.parametrize(
    ("render", "status", "body"),
    [
        (aimlapi._render, 500, {"statusCode": 500, "message": "task t failed: boom", "error": {
            "message": "task t failed: boom", "type": "server_error", "param": None, "code": "failed"}}),
        (segmind.render, 500, {"error": "task t failed: boom"}),
        (texttoimage._render, 500, {"code": -1, "message": "task t failed: boom", "data": None}),
        (wiro._render, 200, {"result": False, "errors": [{"code": 0, "message": "task t failed: boom"}]}),
    ],
    ids=["aimlapi", "segmind", "texttoimage", "wiro"],
)
def test_a_failed_task_in_each_providers_words(render: Callable[[Refusal], Any], status: int, body: dict) -> None:
    answer = render(Refusal("failed", "task t failed: boom"))
    assert answer.status_code == status and orjson.loads(answer.body) == body
