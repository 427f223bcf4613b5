"""Live events written straight to idle sockets arrive whole, in order, in each socket's own mode."""

from __future__ import annotations

import asyncio

import httpx
import websockets

from tests.observability.test_metrics import moved, scrape, settle, value
from tests.support import decode_frame, is_terminal, previewed_steps, seqs, subscribe

STEPS = 6


async def test_live_events_reach_every_mode_whole_and_are_each_counted_once(start_server):
    server = start_server("--preview-min-interval", "0")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        # A long task holds the one worker while three sockets subscribe to the next one, so every
        # event of it is live (none replayed from the store).
        blocker = (await client.post("/v1/tasks", json={"prompt": "blocker", "width": 512, "height": 512, "num_inference_steps": 100})).json()
        task = (await client.post("/v1/tasks", json={"prompt": "a red circle", "width": 128, "height": 128, "num_inference_steps": STEPS, "preview_format": "jpeg"})).json()
        before = await scrape(client)
        modes = ("binary", "json", "none")
        sockets = [await websockets.connect(server.ws_url, max_size=None) for _ in modes]
        for ws, mode in zip(sockets, modes):
            await subscribe(ws, task["id"], task["token"], previews=mode)
            assert decode_frame(await ws.recv())["type"] == "subscribed"
            queued = decode_frame(await ws.recv())  # the stored log so far: its task_queue
            assert (queued["type"], queued["seq"]) == ("task_queue", 1)
        assert (await client.post(f"/v1/tasks/{blocker['id']}/cancel")).status_code == 202

        received: dict[str, list[dict]] = {}
        for ws, mode in zip(sockets, modes):
            events = [queued]
            while not is_terminal(events[-1]):
                frame = await asyncio.wait_for(ws.recv(), 120)
                event = decode_frame(frame)
                assert isinstance(frame, bytes) == ("_image" in event)  # binary frames carry an image
                events.append(event)
            await ws.close()
            received[mode] = events

        after = await settle(client, lambda s: value(s, "latentcast_subscribers", transport="websocket") == 0)

    binary, as_json, bare = received["binary"], received["json"], received["none"]
    assert seqs(binary) == seqs(as_json) == seqs(bare) == list(range(1, len(binary) + 1))
    assert binary[-1]["type"] == "task_postprocess_end"
    assert [e["type"] for e in binary] == [e["type"] for e in as_json] == [e["type"] for e in bare]
    # every step's preview, in each mode's own form: the image bytes beside the envelope, base64
    # inside it, or nothing
    images = [e["_image"] for e in previewed_steps(binary, STEPS)]
    assert len(images) == STEPS and all(image.startswith(b"\xff\xd8") for image in images)
    embedded = [e["message"]["preview"]["data"] for e in previewed_steps(as_json, STEPS)]
    assert len(embedded) == STEPS
    assert not any("preview" in e["message"] for e in bare if e["type"] == "task_progress")

    # each socket's messages counted once: its `subscribed`, its events; and most of the live
    # ones went past the sender task (the sockets read as fast as the steps come)
    sent = moved(before, after, "latentcast_events_sent_total", transport="websocket")
    assert sent == sum(len(events) + 1 for events in received.values())
    written_at_once = moved(before, after, "latentcast_ws_events_written_at_once_total")
    assert 1 <= written_at_once <= sent - 2 * len(modes)  # never the replies nor the replayed task_queue
