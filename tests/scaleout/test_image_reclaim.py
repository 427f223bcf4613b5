"""An image task whose worker dies mid-run on Redis: another worker takes it over and runs it from
the input stored with the task, to the very picture an uninterrupted run of it makes."""

from __future__ import annotations

import base64
import io

import httpx
from PIL import Image

from tests.support import collect, types, wait_status


def _picture() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), "purple").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


TASK = {"prompt": "reclaimed image", "num_inference_steps": 60, "strength": 0.5, "seed": 9, "image": _picture()}


async def test_a_reclaimed_image_task_runs_again_from_its_stored_input(cluster):
    front = cluster.frontend()
    cluster.worker("w1"), cluster.worker("w2")
    cluster.wait_workers({"w1", "w2"})
    async with httpx.AsyncClient(base_url=front.base_url, timeout=60) as client:
        task = (await client.post("/v1/tasks", json=TASK)).json()
        running = await wait_status(client, task["id"], {"running"})
        cluster.workers[running["worker"]].kill()
        events = await collect(front.ws_url, task["id"], task["token"], previews="none", timeout=300)
        assert types(events)[-1] == "task_postprocess_end"
        accepts = [e["message"]["attempt"] for e in events if e["type"] == "task_accept"]
        starts = [e["message"]["steps"] for e in events if e["type"] == "task_start"]
        assert accepts[-1] == 2 and starts[-1] == 30  # ceil(0.5 x 60), on the second attempt too
        again = (await client.post("/v1/tasks", json=TASK)).json()
        await collect(front.ws_url, again["id"], again["token"], previews="none", timeout=300)
        first, second = [(await client.get(f"/v1/tasks/{t['id']}")).json() for t in (task, again)]
        reclaimed = await client.get(first["outputs"][0]["url"], params={"token": task["token"]})
        uninterrupted = await client.get(second["outputs"][0]["url"], params={"token": again["token"]})
        assert reclaimed.content == uninterrupted.content
