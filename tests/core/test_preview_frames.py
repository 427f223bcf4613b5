"""A preview travels at the resolution it carries and says so, alike on every transport: latent2rgb
at latent size with the image's size beside it, a decoded preview at most 512 px a side. Stores
written before previews carried their image's size replay their previews as large as their images."""

from __future__ import annotations

import base64
import contextlib
import io
import sqlite3
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import aconnect_sse
from PIL import Image
from redis.asyncio import Redis

from latentcast.server.backends.redis_names import RedisNames
from tests.support import SMALL, ServerProcess, collect, collect_from_the_start, previewed_steps

LATENT = {"prompt": "a lighthouse", "width": 256, "height": 128, "num_inference_steps": 3, "preview_every": 1}
LATENT_HEADER = {"format": "jpeg", "width": 32, "height": 16, "image_width": 256, "image_height": 128}
DECODED = {
    **LATENT, "width": 768, "height": 512, "num_inference_steps": 2, "preview_method": "vae", "preview_format": "webp"
}
DECODED_HEADER = {"format": "webp", "width": 512, "height": 341, "image_width": 768, "image_height": 512}
# what a preview stored without its image's size reads as: as large as its image
OLD_HEADER = {"format": "jpeg", "width": 64, "height": 64, "image_width": 64, "image_height": 64}


def picture_of(data: bytes) -> tuple[str, tuple[int, int]]:
    with Image.open(io.BytesIO(data)) as image:
        return image.format, image.size


def jpeg(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 90, 160)).save(buffer, format="JPEG")
    return buffer.getvalue()


async def sse_events(client: httpx.AsyncClient, task: dict[str, Any], previews: str) -> list[dict[str, Any]]:
    url = f"/v1/tasks/{task['id']}/events"
    async with aconnect_sse(client, "GET", url, params={"previews": previews, "token": task["token"]}) as source:
        return [orjson.loads(sse.data) async for sse in source.aiter_sse()]


def with_base64_preview(events: list[dict[str, Any]]) -> tuple[dict[str, Any], bytes]:
    """The one event that still has its image (replay keeps only the newest), and the image."""
    (event,) = [e for e in events if "preview" in e["message"]]
    return event, base64.b64decode(event["message"]["preview"].pop("data"))


@pytest.mark.parametrize(
    ("body", "header"), [(LATENT, LATENT_HEADER), (DECODED, DECODED_HEADER)], ids=["latent2rgb", "vae"]
)
async def test_every_transport_describes_a_preview_by_its_own_size_and_its_images(
    server: ServerProcess, client: httpx.AsyncClient, body: dict[str, Any], header: dict[str, Any]
) -> None:
    task, live = await collect_from_the_start(server, client, body, previews="binary")
    previewed = previewed_steps(live, body["num_inference_steps"])
    for event in previewed:  # binary frames, live: the header, then the image it describes
        assert event["message"]["preview"] == header
        assert picture_of(event["_image"]) == (header["format"].upper(), (header["width"], header["height"]))

    # replayed from the store after the end: the newest preview, the same header and bytes in every mode
    newest = previewed[-1]
    replayed = await collect(server.ws_url, task["id"], task["token"], previews="binary")
    (binary,) = [e for e in replayed if "_image" in e]
    assert (binary["seq"], binary["message"]["preview"], binary["_image"]) == (newest["seq"], header, newest["_image"])
    for events in (
        await collect(server.ws_url, task["id"], task["token"], previews="json"),
        await sse_events(client, task, "json"),
    ):
        event, image = with_base64_preview(events)
        assert (event["seq"], event["message"]["preview"], image) == (newest["seq"], header, newest["_image"])


async def test_a_sqlite_database_from_before_image_sizes_is_upgraded_in_place(start_server) -> None:
    server = start_server()
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        task = (await client.post("/v1/tasks", json={"prompt": "old", **SMALL})).json()
    assert (await collect(server.ws_url, task["id"], task["token"]))[-1]["type"] == "task_postprocess_end"
    server.stop()
    # The previews table as an earlier release left it: no image size, and a preview as large as its image.
    old_preview = jpeg((64, 64))
    with contextlib.closing(sqlite3.connect(server.data_dir / "latentcast.db")) as db:
        db.execute("ALTER TABLE previews DROP COLUMN image_width")
        db.execute("ALTER TABLE previews DROP COLUMN image_height")
        db.execute("UPDATE previews SET width = 64, height = 64, data = ?", (old_preview,))
        db.commit()

    server = start_server()
    replayed = await collect(server.ws_url, task["id"], task["token"], previews="binary")
    (event,) = [e for e in replayed if "_image" in e]
    assert (event["message"]["preview"], event["_image"]) == (OLD_HEADER, old_preview)
    # the upgraded database takes new previews with their image's size
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        fresh = (await client.post("/v1/tasks", json={"prompt": "new", **SMALL})).json()
    followed = await collect(server.ws_url, fresh["id"], fresh["token"], previews="binary")
    headers = [e["message"]["preview"] for e in followed if "_image" in e]  # live, or the newest if it ran already
    latent = {"format": "jpeg", "width": 8, "height": 8, "image_width": 64, "image_height": 64}
    assert headers and all(header == latent for header in headers)
    with contextlib.closing(sqlite3.connect(server.data_dir / "latentcast.db")) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(previews)")]
    assert columns[-2:] == ["image_width", "image_height"]


@pytest.mark.parametrize("server", ["redis"], indirect=True)
async def test_a_preview_redis_kept_from_before_image_sizes_replays_as_large_as_its_image(
    server: ServerProcess, client: httpx.AsyncClient
) -> None:
    task = (await client.post("/v1/tasks", json={"prompt": "old", **SMALL})).json()
    assert (await collect(server.ws_url, task["id"], task["token"]))[-1]["type"] == "task_postprocess_end"
    old_preview = jpeg((64, 64))
    redis = Redis.from_url(server.args[server.args.index("--broker") + 1])
    async with redis:  # the newest preview's hash as an earlier release wrote it: [format, width, height]
        old_meta = orjson.dumps(["jpeg", 64, 64])
        await redis.hset(RedisNames().preview(task["id"]), mapping={"meta": old_meta, "data": old_preview})
    replayed = await collect(server.ws_url, task["id"], task["token"], previews="binary")
    (event,) = [e for e in replayed if "_image" in e]
    assert (event["message"]["preview"], event["_image"]) == (OLD_HEADER, old_preview)
