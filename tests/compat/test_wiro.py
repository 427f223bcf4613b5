"""Wiro (provider-docs 004): Run, the socket's task_info, every event, Task/Detail, Cancel, Kill,
callbackUrl (a webhook in Wiro's body shape: tests/webhooks has the machinery's own tests), and each
refusal."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import standardwebhooks

from latentcast.server.compat.schedulers import WIRO_SCHEDULERS
from latentcast.server.compat.wiro_detail import task_detail
from latentcast.server.protocol.events import RecordedEvent
from latentcast.server.security.wiro_signature import wiro_signature
from latentcast.server.tasks.params import TaskParams
from latentcast.server.tasks.record import TaskRecord
from tests.compat.helpers import changed, nothing_queued, wiro_socket
from tests.receiver import HANG_UP, Receiver
from tests.support import INWARD_URLS, ServerProcess, server_webhook_secret, wait_status

SLUG = "stabilityai/stable-diffusion-3-medium"
SMALL = {"width": 64, "height": 64, "steps": 2}
# the page's Run command: x-api-key with the optional x-nonce and x-signature
HEADERS = {"x-api-key": "key", "x-nonce": "1734513807", "x-signature": wiro_signature("key", "secret", "1734513807")}
# every field of the page's Task/Detail record, and of each of its outputs
DETAIL_FIELDS = {
    "id", "uuid", "name", "socketaccesstoken", "parameters", "debugoutput", "debugerror", "starttime", "endtime",
    "elapsedseconds", "status", "cps", "totalcost", "guestid", "projectid", "modelid", "description",
    "basemodelid", "runtype", "modelfolderid", "modelfileid", "callbackurl", "marketplaceid", "createtime",
    "canceltime", "assigntime", "accepttime", "preprocessstarttime", "preprocessendtime", "postprocessstarttime",
    "postprocessendtime", "pexit", "categories", "outputs", "size",
}
OUTPUT_FIELDS = {
    "id", "name", "contenttype", "parentid", "uuid", "size", "addedtime", "modifiedtime", "accesskey",
    "foldercount", "filecount", "ispublic", "expiretime", "url",
}
TIME_FIELDS = ("starttime", "endtime", "createtime", "canceltime", "assigntime", "accepttime", "preprocessstarttime",
               "preprocessendtime", "postprocessstarttime", "postprocessendtime")
# the event types the page's JavaScript `switch` handles
PAGE_CASES = {
    "task_queue", "task_accept", "task_preprocess_start", "task_preprocess_end", "task_assign", "task_start",
    "task_output", "task_error", "task_output_full", "task_error_full", "task_end", "task_postprocess_start",
    "task_postprocess_end",
}


async def _run(client: httpx.AsyncClient, body: dict[str, Any], slug: str = SLUG) -> dict[str, Any]:
    answer = await client.post(f"/v1/Run/{slug}", headers=HEADERS, json=body)
    assert answer.status_code == 200
    return answer.json()


async def _task(client: httpx.AsyncClient, action: str, **ident: str) -> dict[str, Any]:
    answer = await client.post(f"/v1/Task/{action}", headers=HEADERS, json=ident)
    assert answer.status_code == 200
    return answer.json()


def _page_script(messages: list[dict[str, Any]]) -> list[str]:
    """What the page's onmessage does with the messages: the image URLs it adds to #files."""
    urls = []
    for msg in messages:
        if msg.get("type") is not None and msg["type"] == "task_postprocess_end":
            urls.extend(current["url"] for current in msg["message"])
    return urls


def _lifecycle(events: list[dict[str, Any]]) -> list[str]:
    """Event types without log lines and progress, repeated task_queue (position changes) once."""
    kept: list[str] = []
    for event in events:
        if event["type"] not in ("task_output", "task_progress") and kept[-1:] != [event["type"]]:
            kept.append(event["type"])
    return kept


async def test_run_socket_and_detail_end_to_end(server: ServerProcess, client: httpx.AsyncClient) -> None:
    run = await _run(client, {"prompt": "end to end", "negativePrompt": "blur", "seed": "77", **SMALL})
    assert set(run) == {"errors", "taskid", "socketaccesstoken", "result"}
    assert run["errors"] == [] and run["result"] is True

    # the page's socket, at wss://.../v1 with only the host swapped
    messages = await wiro_socket(f"ws://127.0.0.1:{server.port}/v1", run["socketaccesstoken"])
    assert messages[0] == {"type": "subscribed", "id": run["taskid"], "since": 0}
    events = [m for m in messages if "seq" in m]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["id"] == run["taskid"] for e in events)
    assert _lifecycle(events) == [
        "task_queue", "task_accept", "task_preprocess_start", "task_preprocess_end", "task_assign", "task_start",
        "task_output_full", "task_end", "task_postprocess_start", "task_postprocess_end",
    ]
    assert {e["type"] for e in events} - PAGE_CASES == {"task_progress"}  # the one the page does not handle
    lines = [e["message"] for e in events if e["type"] == "task_output"]
    assert lines[0].startswith("Generating 1 image(s) of 64x64 in 2 steps with seed 77")
    assert lines[1:3] == ["Step 1/2", "Step 2/2"] and lines[3].startswith("Denoised in ")
    full = next(e["message"] for e in events if e["type"] == "task_output_full")
    assert full == "\n".join(lines)
    outputs = events[-1]["message"]
    urls = _page_script(messages)
    assert urls == [o["url"] for o in outputs] and len(urls) == 1
    image = await client.get(urls[0])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"

    by_token = await _task(client, "Detail", tasktoken=run["socketaccesstoken"])
    by_id = await _task(client, "Detail", taskid=run["taskid"])
    assert by_token == by_id
    assert set(by_token) == {"total", "errors", "tasklist", "result"}
    assert (by_token["total"], by_token["errors"], by_token["result"]) == ("1", [], True)
    task = by_token["tasklist"][0]
    assert set(task) == DETAIL_FIELDS
    assert (task["id"], task["socketaccesstoken"]) == (run["taskid"], run["socketaccesstoken"])
    assert (task["status"], task["pexit"], task["debugoutput"], task["debugerror"]) == (
        "task_postprocess_end", "0", full, ""
    )
    assert task["parameters"] == {
        "prompt": "end to end", "negativePrompt": "blur", "samples": "1", "steps": "2", "scale": "7", "seed": "77",
        "width": "64", "height": "64", "scheduler": "FlowMatchEulerDiscreteScheduler",
    }
    assert all(re.fullmatch(r"[1-9][0-9]{9}", task[name]) for name in TIME_FIELDS if name != "canceltime")
    assert task["canceltime"] == "0" and task["createtime"] <= task["accepttime"] <= task["starttime"]
    assert re.fullmatch(r"[0-9]+\.[0-9]{4}", task["elapsedseconds"])
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", task["uuid"])
    [output] = task["outputs"]
    assert set(output) == OUTPUT_FIELDS
    assert (output["name"], output["contenttype"], output["url"]) == ("0.png", "image/png", outputs[0]["url"])
    assert output["size"] == task["size"] == str(outputs[0]["size"]) == str(len(image.content))
    assert output["uuid"] == task["uuid"] and re.fullmatch(r"[0-9a-f]{32}", output["id"])


async def test_run_takes_multipart_and_url_encoded_forms(client: httpx.AsyncClient) -> None:
    fields = {"prompt": "a form", "steps": "2", "width": "72", "height": "64", "scale": "4.5", "seed": "",
              "samples": "2", "scheduler": "DPMSolverMultistepScheduler"}
    multipart = await client.post(f"/v1/Run/{SLUG}", headers=HEADERS, files={k: (None, v) for k, v in fields.items()})
    encoded = await client.post(f"/v1/Run/{SLUG}", headers=HEADERS, data={**fields, "prompt": "ünïcode form"})
    for answer, prompt in ((multipart, "a form"), (encoded, "ünïcode form")):
        run = answer.json()
        assert run["result"] is True, run
        task = await wait_status(client, run["taskid"], {"completed"})
        assert task["params"] | {"prompt": prompt, "num_inference_steps": 2, "width": 72, "guidance_scale": 4.5,
                                 "num_images": 2, "scheduler": "dpmpp_2m"} == task["params"]
        assert len(task["outputs"]) == 2 and task["seed"] >= 0  # "" seed: random


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)  # the mapping, not the backend, is under test
@pytest.mark.parametrize(("name", "native"), WIRO_SCHEDULERS.items())
async def test_each_wiro_scheduler_runs_as_its_native_one(client: httpx.AsyncClient, name: str, native: str) -> None:
    run = await _run(client, {"prompt": f"scheduler {name}", **SMALL, "scheduler": name})
    assert run["result"] is True, run
    task = await wait_status(client, run["taskid"], {"completed"})
    assert task["params"]["scheduler"] == native
    [detail] = (await _task(client, "Detail", tasktoken=run["socketaccesstoken"]))["tasklist"]
    assert detail["parameters"]["scheduler"] == name


async def test_cancel_queued_and_kill_running(
    hooks_server: ServerProcess, hooks_client: httpx.AsyncClient, receiver: Callable[..., Receiver]
) -> None:
    server, client, hook = hooks_server, hooks_client, receiver([])
    blocker = await _run(client, {"prompt": "blocker", "width": 512, "height": 512, "steps": 100})
    await wait_status(client, blocker["taskid"], {"running"}, timeout=300)
    queued = await _run(client, {"prompt": "queued", **SMALL, "callbackUrl": hook.url})
    detail = (await _task(client, "Detail", tasktoken=queued["socketaccesstoken"]))["tasklist"][0]
    assert (detail["status"], detail["pexit"], detail["starttime"], detail["outputs"]) == ("task_queue", "0", "0", [])

    not_cancellable = {"result": False, "errors": [{"code": 1, "message": "Task is not in a cancellable state."}]}
    assert await _task(client, "Cancel", tasktoken=blocker["socketaccesstoken"]) == not_cancellable
    assert await _task(client, "Kill", tasktoken=queued["socketaccesstoken"]) == {
        "result": False,
        "errors": [{"code": 1, "message": "Task could not be killed: it is still queued; use /Task/Cancel"}],
    }

    assert await _task(client, "Cancel", tasktoken=queued["socketaccesstoken"]) == {"result": True, "errors": []}
    detail = (await _task(client, "Detail", taskid=queued["taskid"]))["tasklist"][0]
    assert (detail["status"], detail["pexit"], detail["outputs"]) == ("task_cancel", "1", [])
    assert detail["canceltime"] != "0" and detail["accepttime"] == "0"
    [call] = await asyncio.to_thread(hook.wait_for, 1)  # a cancelled task's callback carries its final detail too
    assert call["body"]["tasklist"][0]["status"] == "task_cancel"

    assert await _task(client, "Kill", tasktoken=blocker["socketaccesstoken"]) == {"result": True, "errors": []}
    messages = await wiro_socket(server.ws_url, blocker["socketaccesstoken"])
    # (the running task's reason is the worker's: the service does not pass "killed by request" on)
    assert messages[-1]["type"] == "task_cancel" and "reason" in messages[-1]["message"]
    detail = (await _task(client, "Detail", taskid=blocker["taskid"]))["tasklist"][0]
    assert (detail["status"], detail["pexit"], detail["outputs"]) == ("task_cancel", "1", [])
    assert "\nCancelled: " in detail["debugoutput"] and detail["endtime"] == "0"

    assert await _task(client, "Kill", taskid=blocker["taskid"]) == {
        "result": False, "errors": [{"code": 1, "message": "Task could not be killed: it already ended (cancelled)"}],
    }
    assert await _task(client, "Cancel", taskid=blocker["taskid"]) == not_cancellable


async def test_callback_is_posted_when_the_task_ends_and_retried(
    hooks_server: ServerProcess, hooks_client: httpx.AsyncClient, receiver: Callable[..., Receiver]
) -> None:
    client, hook = hooks_client, receiver([HANG_UP, 503, 200])  # fails twice (no answer, an error), then takes it
    run = await _run(client, {"prompt": "call me", **SMALL, "callbackUrl": hook.url})
    calls = await asyncio.to_thread(hook.wait_for, 3)
    assert [call["status"] for call in calls] == [HANG_UP, 503, 200]
    assert all(call["path"] == "/hook" and call["headers"]["content-type"] == "application/json" for call in calls)
    assert calls[0]["body"] == calls[1]["body"] == calls[2]["body"]
    body = calls[0]["body"]
    assert body == await _task(client, "Detail", taskid=run["taskid"])  # the final Task/Detail
    task = body["tasklist"][0]
    assert (task["status"], task["callbackurl"], len(task["outputs"])) == ("task_postprocess_end", hook.url, 1)
    # one delivery, the same webhook-id on each attempt, each signed as Standard Webhooks says
    last_seq = (await client.get(f"/v1/tasks/{run['taskid']}")).json()["last_seq"]
    assert {call["headers"]["webhook-id"] for call in calls} == {f"msg_{run['taskid']}_{last_seq}"}
    signer = standardwebhooks.Webhook(await asyncio.to_thread(server_webhook_secret, hooks_server))
    assert all(signer.verify(call["raw"], call["headers"]) == body for call in calls)
    [delivery] = (await client.get(f"/v1/tasks/{run['taskid']}/deliveries")).json()["data"]
    assert (delivery["event"], delivery["state"], delivery["attempts"], delivery["last_status_code"]) == (
        "task_postprocess_end", "delivered", 3, 200
    )
    assert len(hook.requests) == 3, "no attempt after the one that succeeded"


async def test_a_failed_task_as_wiro_shows_it() -> None:
    # the events a failed run records (docs/protocol.md), folded into a record as the store does
    params = TaskParams(prompt="p", width=64, height=64)
    record = TaskRecord(id="0123456789abcdef", token="tok", params=params, model="m", seed=3, created_at=1000.0)
    log = [
        ("task_queue", {"position": 1, "queue_length": 1}), ("task_accept", {"worker": "cpu-0", "attempt": 1}),
        ("task_preprocess_start", {}), ("task_output_full", ""), ("task_error_full", "RuntimeError: out of memory"),
        ("task_error", {"code": "generation_failed", "message": "RuntimeError: out of memory", "fatal": True}),
    ]
    events = [
        RecordedEvent(record.id, seq, kind, 1000.0 + seq, message) for seq, (kind, message) in enumerate(log, start=1)
    ]
    for event in events:
        record.apply(event)

    async def stored(task_id: str, since: int = 0) -> list[RecordedEvent]:
        return events

    detail = await task_detail(SimpleNamespace(events=stored), record)  # type: ignore[arg-type]
    # as on Wiro: the task reaches task_postprocess_end, with pexit "1" and no outputs
    assert (detail["status"], detail["pexit"], detail["size"]) == ("task_postprocess_end", "1", "0")
    assert detail["outputs"] == []
    assert detail["debugerror"] == "RuntimeError: out of memory"
    assert (detail["accepttime"], detail["starttime"], detail["elapsedseconds"]) == ("1002", "0", "4.0000")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prompt": None}, "Request parameter [prompt] required"),
        ({"prompt": ""}, "Request parameter [prompt] is invalid: String should have at least 1 character"),
        ({"samples": 0}, "Request parameter [samples] is invalid: Input should be greater than or equal to 1"),
        ({"samples": "5"}, "Request parameter [samples] is invalid: Input should be less than or equal to 4"),
        ({"steps": 101}, "Request parameter [steps] is invalid: Input should be less than or equal to 100"),
        ({"steps": "ten"}, "Request parameter [steps] is invalid: Input should be a valid integer, unable to parse "
                           "string as an integer"),
        ({"scale": -1}, "Request parameter [scale] is invalid: Input should be greater than or equal to 0"),
        ({"scale": 31}, "Request parameter [scale] is invalid: Input should be less than or equal to 30"),
        ({"width": 100}, "Request parameter [width] is invalid: Input should be a multiple of 8"),
        ({"height": 4096}, "Request parameter [height] is invalid: Input should be less than or equal to 2048"),
        ({"seed": "abc"}, "Request parameter [seed] is invalid: Input should be a valid integer, unable to parse "
                          "string as an integer"),
        ({"seed": -1}, "Request parameter [seed] is invalid: Input should be greater than or equal to 0"),
        ({"scheduler": "DDIMScheduler"}, "Request parameter [scheduler] is invalid: Input should be "
         "'FlowMatchEulerDiscreteScheduler', 'DPMSolverMultistepScheduler' or 'UniPCMultistepScheduler'"),
        ({"callbackUrl": "ftp://example.com/x"}, "Request parameter [callbackUrl] is invalid: must be an http or "
                                                 "https URL"),
        ({"callbackUrl": "ftp://x"}, "Request parameter [callbackUrl] is invalid: must be an http or https URL"),
        ({"callbackUrl": "http://[::1"}, "Request parameter [callbackUrl] is invalid: not a valid URL (Invalid port: "
                                         "':1')"),
        ({"callbackUrl": "http://x\r\nHost: y"}, "Request parameter [callbackUrl] is invalid: must not contain "
                                                 "spaces or control characters"),
        ({"callbackUrl": "http:///hook"}, "Request parameter [callbackUrl] is invalid: must name a host"),
        ({"inputImage": "x"}, "Request parameter [inputImage] is invalid: the data URL's base64 is not valid"),
    ],
)
async def test_a_bad_parameter_is_refused_wiro_style(
    client: httpx.AsyncClient, change: dict[str, Any], message: str
) -> None:
    async with nothing_queued(client):
        answer = await _run(client, changed({"prompt": "refused", **SMALL}, change))
    assert answer == {"result": False, "errors": [{"code": 0, "message": message}]}


@pytest.mark.parametrize(("url", "words"), INWARD_URLS)
async def test_a_callback_url_to_an_inward_address_is_refused(client: httpx.AsyncClient, url: str, words: str) -> None:
    """A server without --webhook-allow-private would POST there from inside its own network."""
    async with nothing_queued(client):
        answer = await _run(client, {"prompt": "refused", **SMALL, "callbackUrl": url})
    assert answer["result"] is False and len(answer["errors"]) == 1 and answer["errors"][0]["code"] == 0
    message = answer["errors"][0]["message"]
    assert re.fullmatch(rf"Request parameter \[callbackUrl\] is invalid: {words}; only public addresses are allowed", message)


async def test_refused_requests(client: httpx.AsyncClient) -> None:
    assert await _run(client, {"prompt": "x"}, slug="someone/another-model") == {
        "result": False,
        "errors": [{"code": 1, "message": "slug-owner-project-not-exist: someone/another-model is not served here"}],
    }
    upload = await client.post(f"/v1/Run/{SLUG}", files={"prompt": (None, "x"), "inputImage": ("a.png", b"\x89PNG")})
    assert upload.json() == {"result": False, "errors": [{"code": 0, "message": (
        "Request parameter [inputImage] is invalid: is not an image Pillow can read")}]}
    invalid = {"result": False, "errors": [{"code": 0, "message": "Request parameters are invalid."}]}
    for raw in (b"{oops", b'["prompt"]'):
        assert (await client.post(f"/v1/Run/{SLUG}", content=raw)).json() == invalid
    # the page's own Task/Detail example, as its shell quoting sends it, is not JSON
    page_body = b'{\n"tasktoken": eDcCm5yyUfIvMFspTwww49OUfgXkQt,\n}'
    detail = await client.post("/v1/Task/Detail", headers={"Content-Type": "application/json"}, content=page_body)
    assert detail.status_code == 200 and detail.json() == invalid
    missing = {"result": False, "errors": [{"code": 0, "message": "taskid or tasktoken is required"}]}
    nothing = {"result": False, "errors": [{"code": 1, "message": "There is no task yet."}]}
    for action in ("Detail", "Cancel", "Kill"):
        assert await _task(client, action) == missing
        assert await _task(client, action, tasktoken="eDcCm5yyUfIvMFspTwww49OUfgXkQt") == nothing
        assert await _task(client, action, taskid="2221") == nothing
