"""A task's whole life over the real socket: sequence, seq numbers, previews, replay (SSE: test_sse.py)."""

from __future__ import annotations

import asyncio
import base64
import io

import httpx
import orjson
import websockets
from PIL import Image

from tests.support import SMALL, collect, collect_from_the_start, decode_frame, previewed_steps, seqs, subscribe, types


def body(**params) -> dict:
    return {"prompt": "a lighthouse at dusk", **SMALL, **params}


async def submit(client: httpx.AsyncClient, **params) -> dict:
    response = await client.post("/v1/tasks", json=body(**params))
    assert response.status_code == 201, response.text
    return response.json()


def expected_types(steps: int) -> list[str]:
    return [
        "task_queue",
        "task_accept",
        "task_preprocess_start",
        "task_preprocess_end",
        "task_assign",
        "task_start",
        "task_output",
        *["task_progress", "task_output"] * steps,
        "task_output",
        "task_output_full",
        "task_end",
        "task_postprocess_start",
        "task_postprocess_end",
    ]


async def test_full_event_sequence_with_gapless_seq(server, client):
    task = await submit(client, seed=7, num_inference_steps=5)
    events = await collect(server.ws_url, task["id"], task["token"], previews="none")

    assert types(events) == expected_types(5)
    assert seqs(events) == list(range(1, len(events) + 1))
    assert all(e["id"] == task["id"] for e in events)
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    start = events[5]["message"]
    assert start == {"steps": 5, "seed": 7, "width": 64, "height": 64, "images": 1}
    steps = [e["message"] for e in events if e["type"] == "task_progress"]
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5]
    assert steps[-1]["percent"] == 100.0 and steps[-1]["eta_seconds"] == 0.0
    assert all(s["it_per_s"] > 0 and "preview" not in s for s in steps)
    assert [e["message"] for e in events if e["message"] in [f"Step {i}/5" for i in range(1, 6)]] == [
        f"Step {i}/5" for i in range(1, 6)
    ]
    assert "Step 5/5" in events[-4]["message"]  # task_output_full holds the whole log

    outputs = events[-1]["message"]
    assert len(outputs) == 1
    output = outputs[0]
    assert (output["name"], output["contenttype"], output["width"], output["height"], output["seed"]) == (
        "0.png", "image/png", 64, 64, 7,
    )
    file = await client.get(output["url"])
    assert file.status_code == 200 and file.headers["content-type"] == "image/png"
    assert len(file.content) == output["size"]
    assert Image.open(io.BytesIO(file.content)).size == (64, 64)

    detail = (await client.get(f"/v1/tasks/{task['id']}")).json()
    assert detail["status"] == "completed"
    assert detail["outputs"] == outputs
    assert detail["last_seq"] == events[-1]["seq"]
    assert detail["seed"] == 7 and detail["attempt"] == 1


async def test_binary_previews_decode_as_images_of_the_promised_size(server, client):
    asked = body(width=128, height=96, preview_format="jpeg")
    task, events = await collect_from_the_start(server, client, asked, "binary")
    previews = previewed_steps(events, 4)
    assert all("_image" in e for e in previews)
    for event in previews:
        meta = event["message"]["preview"]
        # latent2rgb's preview is one pixel per latent cell (an eighth a side) of a 128 x 96 picture
        assert meta == {"format": "jpeg", "width": 16, "height": 12, "image_width": 128, "image_height": 96}
        image = Image.open(io.BytesIO(event["_image"]))
        assert (image.format, image.size) == ("JPEG", (16, 12))


async def test_json_previews_carry_base64_webp(server, client):
    asked = body(width=96, height=64, num_images=2, preview_format="webp")
    task, events = await collect_from_the_start(server, client, asked)
    previews = [e["message"]["preview"] for e in previewed_steps(events, 4)]
    for preview in previews:
        image = Image.open(io.BytesIO(base64.b64decode(preview["data"])))
        assert (image.format, image.size) == ("WEBP", (12, 8))
        assert (preview["image_width"], preview["image_height"]) == (96, 64)
    assert len(events[-1]["message"]) == 2
    assert [o["name"] for o in events[-1]["message"]] == ["0.png", "1.png"]


async def test_preview_every_and_method_none(server, client):
    task, events = await collect_from_the_start(server, client, body(num_inference_steps=6, preview_every=4))
    steps_with_preview = [e["message"]["step"] for e in events if "preview" in e.get("message", {})]
    assert steps_with_preview == [4, 6]  # every 4th, and always the last

    task = await submit(client, preview_method="none")
    events = await collect(server.ws_url, task["id"], task["token"], previews="json")
    assert not [e for e in events if "preview" in e.get("message", {})]


def without_older_previews(events: list[dict]) -> list[dict]:
    """What replay promises: the live events, with only the newest preview's image kept."""
    newest = max((e["seq"] for e in events if "preview" in e.get("message", {})), default=None)
    kept = []
    for event in events:
        if "preview" in event.get("message", {}) and event["seq"] != newest:
            event = {**event, "message": {k: v for k, v in event["message"].items() if k != "preview"}}
        kept.append(event)
    return kept


async def test_replay_after_the_end_equals_what_live_subscribers_got(server, client):
    task = await submit(client, num_inference_steps=6)
    live = await collect(server.ws_url, task["id"], task["token"], previews="json")
    replay = await collect(server.ws_url, task["id"], task["token"], previews="json")
    assert replay == without_older_previews(live)
    assert "preview" in replay[-7]["message"]  # the newest preview survives (last step)

    tail = await collect(server.ws_url, task["id"], task["token"], since=10, previews="json")
    assert tail == replay[10:]


async def test_late_subscriber_mid_task_gets_everything_once(server, client):
    task = await submit(client, width=256, height=256, num_inference_steps=40)
    live_task = asyncio.create_task(collect(server.ws_url, task["id"], task["token"], previews="none"))
    async with websockets.connect(server.ws_url) as ws:
        # join once the task is well under way
        await subscribe(ws, task["id"], task["token"], previews="none")
        while True:
            event = decode_frame(await ws.recv())
            if event.get("type") == "task_progress" and event["message"]["step"] >= 10:
                break
    late = await collect(server.ws_url, task["id"], task["token"], since=0, previews="none")
    live = await live_task
    assert late == live
    assert seqs(late) == list(range(1, len(late) + 1))


async def test_one_socket_carries_many_tasks(server, client):
    first, second = await submit(client), await submit(client)
    seen: dict[str, list[int]] = {first["id"]: [], second["id"]: []}
    async with websockets.connect(server.ws_url) as ws:
        await subscribe(ws, first["id"], first["token"], previews="none")
        await subscribe(ws, second["id"], second["token"], previews="none")
        done = set()
        while len(done) < 2:
            event = decode_frame(await ws.recv())
            if "seq" in event:
                seen[event["id"]].append(event["seq"])
                if event["type"] == "task_postprocess_end":
                    done.add(event["id"])
    for seqs_of_task in seen.values():
        assert seqs_of_task == list(range(1, len(seqs_of_task) + 1))


async def test_task_info_is_wiros_subscribe_on_the_same_socket(server, client):
    task = await submit(client)
    expected = await collect(server.ws_url, task["id"], task["token"], previews="none")
    received = []
    async with websockets.connect(server.ws_url.removesuffix("/ws")) as ws:  # Wiro clients use /v1
        await ws.send(orjson.dumps({"type": "task_info", "tasktoken": task["token"]}).decode())
        while True:
            frame = await ws.recv()
            assert isinstance(frame, str)  # Wiro's page parses every message as JSON
            event = orjson.loads(frame)
            if "seq" in event:
                received.append(event)
                if event["type"] == "task_postprocess_end":
                    break
    assert received == expected
