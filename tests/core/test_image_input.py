"""Image-to-image and inpainting through the native API: the three ways a picture comes (a data URL,
a multipart file, an upload's id), what the task then says and serves of its input, and the 400s of
bad pictures. The pictures' effect on drawing is tests/engine/test_image_runs.py's."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import httpx
import orjson
import pytest
from httpx_sse import aconnect_sse
from PIL import Image

from tests.support import SMALL, collect, previewed_steps, types

SIZE = SMALL["width"]


def png(size: tuple[int, int] = (SIZE, SIZE), colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG of a few hundred bytes whose header declares `width` x `height` pixels."""
    small = png((1, 1))
    header = struct.pack(">II", width, height) + small[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + header) & 0xFFFFFFFF)
    return small[:16] + header + crc + small[33:]


def picture(data: bytes) -> Image.Image:
    opened = Image.open(io.BytesIO(data))
    opened.load()
    return opened


async def finished(server, client: httpx.AsyncClient, task: dict) -> list[dict]:
    events = await collect(server.ws_url, task["id"], task["token"])
    assert types(events)[-1] == "task_postprocess_end", events[-1]
    return events


def run_steps(events: list[dict]) -> tuple[int, list[tuple[int, int]]]:
    started = next(e["message"] for e in events if e["type"] == "task_start")
    progress = [(e["message"]["step"], e["message"]["steps"]) for e in events if e["type"] == "task_progress"]
    return started["steps"], progress


async def test_a_data_url_image_runs_the_strengths_steps_and_is_served_back_as_the_tasks_input(server, client):
    body = {"prompt": "p", **SMALL, "num_inference_steps": 8, "image": data_url(png((96, 64))), "strength": 0.5}
    response = await client.post("/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    task = response.json()
    base = f"{server.base_url}/v1/tasks/{task['id']}/inputs"
    assert task["input"] == {"image": f"{base}/image", "mask": None, "strength": 0.5}
    assert task["params"]["strength"] == 0.5
    events = await finished(server, client, task)
    assert run_steps(events) == (4, [(1, 4), (2, 4), (3, 4), (4, 4)])
    # the same steps with their preview on every transport: JSON and binary frames, and SSE
    assert "preview" in previewed_steps(events, 4)[-1]["message"]
    binary = await collect(server.ws_url, task["id"], task["token"], previews="binary")
    (framed,) = [e for e in binary if "_image" in e]  # a replay keeps the newest preview's image
    assert framed["message"]["step"] == 4 and framed["_image"][:2] == b"\xff\xd8"  # a JPEG
    url = f"/v1/tasks/{task['id']}/events"
    async with aconnect_sse(client, "GET", url, params={"previews": "json", "token": task["token"]}) as source:
        streamed = [orjson.loads(sse.data) async for sse in source.aiter_sse()]
    assert run_steps(streamed) == run_steps(events) and "preview" in previewed_steps(streamed, 4)[-1]["message"]
    # served with the task's token, as it runs: the cover rule made 96x64 into the task's 64x64
    served = await client.get(task["input"]["image"], params={"token": task["token"]})
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert picture(served.content).size == (SIZE, SIZE)
    assert (await client.get(task["input"]["image"], params={"token": "0" * 48})).status_code == 403
    assert (await client.get(f"{base}/mask", params={"token": task["token"]})).status_code == 404
    listed = (await client.get("/v1/tasks", params={"limit": 200})).json()["data"]
    assert next(t for t in listed if t["id"] == task["id"])["input"] == task["input"]


async def test_multipart_files_image_and_mask_with_form_fields(server, client):
    form = {"prompt": "p", "width": str(SIZE), "height": str(SIZE), "num_inference_steps": "4", "strength": "1.0",
            "mask_blur": "2"}
    files = {"image": ("in.png", png(), "image/png"), "mask": ("mask.png", png(colour="white"), "image/png")}
    response = await client.post("/v1/tasks", data=form, files=files)
    assert response.status_code == 201, response.text
    task = response.json()
    assert task["input"]["mask"].endswith(f"/v1/tasks/{task['id']}/inputs/mask")
    assert task["params"]["mask_blur"] == 2
    events = await finished(server, client, task)
    assert run_steps(events)[0] == 4  # strength 1.0: the whole schedule
    mask = await client.get(task["input"]["mask"], params={"token": task["token"]})
    assert picture(mask.content).mode == "L" and picture(mask.content).size == (SIZE, SIZE)


async def test_an_upload_is_named_by_its_id_and_a_task_keeps_its_own_copy(server, client):
    data = png((80, 80), "blue")
    uploaded = await client.post("/v1/uploads", files={"file": ("blue.png", data, "image/png")})
    assert uploaded.status_code == 201, uploaded.text
    answer = uploaded.json()
    assert answer == {"id": answer["id"], "bytes": len(data), "width": 80, "height": 80, "content_type": "image/png"}
    task = (await client.post("/v1/tasks", json={"prompt": "p", **SMALL, "image": answer["id"]})).json()
    assert task["input"]["strength"] == 0.6  # the default with an image
    events = await finished(server, client, task)
    assert run_steps(events)[0] == 3  # ceil(0.6 x 4)
    served = await client.get(task["input"]["image"], params={"token": task["token"]})
    assert picture(served.content).getpixel((10, 10)) == (0, 0, 255)
    # deleting the task deletes its copy with it
    assert (await client.delete(f"/v1/tasks/{task['id']}")).status_code == 204
    assert (await client.get(task["input"]["image"], params={"token": task["token"]})).status_code == 404


async def test_without_a_size_an_image_task_takes_the_images_own_rounded_to_eight(server, client):
    body = {"prompt": "p", "num_inference_steps": 1, "image": data_url(png((100, 70)))}
    task = (await client.post("/v1/tasks", json=body)).json()
    assert (task["params"]["width"], task["params"]["height"]) == (96, 64)
    await finished(server, client, task)


def refusal(response: httpx.Response) -> tuple[int, list[tuple[str, str]]]:
    fields = response.json()["error"].get("fields", [])
    return response.status_code, [(f["field"], f["rule"]) for f in fields]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"image": data_url(b"not a picture at all")}, ("image", "not_an_image")),
        ({"image": data_url(bomb())}, ("image", "max_pixels")),
        ({"image": data_url(png()), "mask": data_url(png((32, 32)))}, ("mask", "mask_size")),
        ({"image": data_url(png()), "strength": 1.5}, ("strength", "less_than_equal")),
        ({"image": data_url(png()), "strength": -0.1}, ("strength", "greater_than_equal")),
        ({"image": "https://example.com/cat.png"}, ("image", "image_source")),
        ({"image": "up_" + "0" * 32}, ("image", "upload")),
        ({"image": "data:image/png;base64,@@@"}, ("image", "base64")),
        ({"image": data_url(png()), "mask": data_url(b"\x89PNG\r\n\x1a\n")}, ("mask", "not_an_image")),
    ],
)
async def test_a_bad_picture_is_a_400_naming_its_field_and_rule(server, client, body, expected):
    response = await client.post("/v1/tasks", json={"prompt": "p", **SMALL, **body})
    assert refusal(response) == (400, [expected]), response.text


async def test_picture_fields_that_do_not_go_together_are_refused(server, client):
    alone = await client.post("/v1/tasks", json={"prompt": "p", **SMALL, "strength": 0.5})
    assert refusal(alone) == (422, [("strength", "requires_image")])
    mask_only = await client.post("/v1/tasks", json={"prompt": "p", **SMALL, "mask": data_url(png())})
    assert refusal(mask_only) == (422, [("mask", "requires_image")])
    files = {"image": ("in.png", png(), "image/png")}
    twice = await client.post("/v1/tasks", data={"prompt": "p", "image": data_url(png())}, files=files)
    assert refusal(twice) == (400, [("image", "duplicate_key")])  # a form's name given twice
    scheduler = await client.post("/v1/tasks", json={"prompt": "p", **SMALL, "image": data_url(png()), "scheduler": "unipc"})
    assert refusal(scheduler) == (422, [("scheduler", "image_scheduler")])


async def test_an_upload_must_be_one_readable_picture(server, client):
    bad = await client.post("/v1/uploads", files={"file": ("x.png", b"plain text", "image/png")})
    assert refusal(bad) == (400, [("file", "not_an_image")])
    huge = await client.post("/v1/uploads", files={"file": ("x.png", bomb(), "image/png")})
    assert refusal(huge) == (400, [("file", "max_pixels")])
    missing = await client.post("/v1/uploads", files={"other": ("x.png", png(), "image/png")})
    assert refusal(missing) == (400, [("file", "missing")])
    as_json = await client.post("/v1/uploads", json={"file": data_url(png())})
    assert refusal(as_json) == (400, [("file", "multipart")])
