"""Cancel: a queued task never starts; a running one stops at its next step without decoding."""

from __future__ import annotations

import httpx
import websockets

from tests.support import SMALL, collect, decode_frame, subscribe, types, wait_status


async def test_cancel_queued_task_never_starts(start_server):
    server = start_server("--workers", "0")  # an API with no worker: everything stays queued
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        task = (await client.post("/v1/tasks", json={"prompt": "p", **SMALL})).json()
        response = await client.post(f"/v1/tasks/{task['id']}/cancel")
        assert response.status_code == 202
        assert response.json()["status"] == "cancelled"
        events = await collect(server.ws_url, task["id"], task["token"])
        assert types(events) == ["task_queue", "task_cancel"]
        assert events[-1]["message"] == {"reason": "cancelled by request"}

        again = await client.post(f"/v1/tasks/{task['id']}/cancel")
        assert again.status_code == 409
        assert again.json()["error"]["type"] == "task_finished"


async def test_cancel_queued_task_behind_a_running_one(server, client):
    long = (await client.post("/v1/tasks", json={"prompt": "p", "width": 256, "height": 256, "num_inference_steps": 100})).json()
    queued = (await client.post("/v1/tasks", json={"prompt": "p", **SMALL})).json()
    await wait_status(client, long["id"], {"running"})
    assert (await client.post(f"/v1/tasks/{queued['id']}/cancel")).status_code == 202
    await client.post(f"/v1/tasks/{long['id']}/cancel")
    events = await collect(server.ws_url, queued["id"], queued["token"])
    assert "task_accept" not in types(events)
    assert types(events)[-1] == "task_cancel"


async def test_cancel_running_task_stops_without_outputs_and_worker_moves_on(server, client):
    running = (await client.post("/v1/tasks", json={"prompt": "p", "width": 256, "height": 256, "num_inference_steps": 100})).json()
    after = (await client.post("/v1/tasks", json={"prompt": "next", **SMALL})).json()
    async with websockets.connect(server.ws_url) as ws:
        await subscribe(ws, running["id"], running["token"], previews="none")
        events = []
        while True:
            event = decode_frame(await ws.recv())
            if "seq" not in event:
                continue
            events.append(event)
            if event["type"] == "task_progress" and event["message"]["step"] == 3:
                assert (await client.post(f"/v1/tasks/{running['id']}/cancel")).status_code == 202
            if event["type"] == "task_cancel":
                break
    kinds = types(events)
    assert "task_end" not in kinds and "task_postprocess_start" not in kinds  # no decode, no files
    assert kinds[-2:] == ["task_output_full", "task_cancel"]
    last_step = max(e["message"]["step"] for e in events if e["type"] == "task_progress")
    assert last_step < 100
    detail = (await client.get(f"/v1/tasks/{running['id']}")).json()
    assert detail["status"] == "cancelled" and detail["outputs"] == []

    next_events = await collect(server.ws_url, after["id"], after["token"])
    assert types(next_events)[-1] == "task_postprocess_end"


async def test_cancel_unknown_task_is_404(client):
    response = await client.post("/v1/tasks/0123456789abcdef/cancel")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
