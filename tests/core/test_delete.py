"""Deleting tasks: an ended task goes with its events and files, by request (`DELETE /v1/tasks/{id}`)
or after `--retention`, on SQLite as on Redis; a queued or running one is refused."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import SMALL, RedisServer, ServerProcess, eventually, wait_status


async def gone(client: httpx.AsyncClient, task: dict, picture: str) -> bool:
    """Nothing of the task answers any more: detail, events, file, and its token."""
    answers = [
        await client.get(f"/v1/tasks/{task['id']}"),
        await client.get(f"/v1/tasks/{task['id']}", params={"token": task["token"]}),
        await client.get(f"/v1/tasks/{task['id']}/events", params={"previews": "none"}),
        await client.get(httpx.URL(picture).path),  # (an output URL names the server that made it)
    ]
    return [a.status_code for a in answers] == [404] * 4


async def test_an_ended_task_is_deleted_with_its_events_and_files(server, client):
    task = (await client.post("/v1/tasks", json={"prompt": "deleted", **SMALL})).json()
    detail = await wait_status(client, task["id"], {"completed"})
    picture = detail["outputs"][0]["url"]
    assert (await client.get(picture)).status_code == 200
    kept = (await client.post("/v1/tasks", json={"prompt": "kept", **SMALL})).json()
    await wait_status(client, kept["id"], {"completed"})

    deleted = await client.delete(f"/v1/tasks/{task['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert await gone(client, task, picture)
    listed = [t["id"] for t in (await client.get("/v1/tasks", params={"limit": 200})).json()["data"]]
    assert task["id"] not in listed and kept["id"] in listed
    again = await client.delete(f"/v1/tasks/{task['id']}")
    assert again.status_code == 404 and again.json()["error"]["type"] == "not_found"
    assert (await client.get(f"/v1/tasks/{kept['id']}")).json()["status"] == "completed"


async def test_a_queued_or_running_task_is_not_deleted(server, client):
    running = (await client.post("/v1/tasks", json={"prompt": "p", "width": 256, "height": 256, "num_inference_steps": 100})).json()
    queued = (await client.post("/v1/tasks", json={"prompt": "p", **SMALL})).json()
    await wait_status(client, running["id"], {"running"})
    for task, status in ((running, "running"), (queued, "queued")):
        refused = await client.delete(f"/v1/tasks/{task['id']}")
        assert refused.status_code == 409
        assert refused.json()["error"] == {
            "type": "task_not_finished",
            "message": f"task {task['id']} is {status}; cancel it, or wait for it to end, before deleting it",
        }
    for task in (queued, running):
        assert (await client.post(f"/v1/tasks/{task['id']}/cancel")).status_code == 202
    await wait_status(client, running["id"], {"cancelled"})
    assert (await client.delete(f"/v1/tasks/{running['id']}")).status_code == 204
    assert (await client.delete(f"/v1/tasks/{queued['id']}")).status_code == 204


@pytest.fixture(params=["sqlite", "redis"])
def brief(request: pytest.FixtureRequest, start_server: Callable[..., ServerProcess], tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start a server of the backend with `--retention` seconds (again, on the same data, if asked)."""
    redis = RedisServer(tmp_path / "redis").start() if request.param == "redis" else None
    started: list[ServerProcess] = []

    def start(retention: str) -> ServerProcess:
        args = ["--retention", retention, *(["--broker", redis.url] if redis else [])]
        started.append(start_server(*args))
        return started[-1]

    yield start
    for server in started:
        server.kill()
    if redis is not None:
        redis.stop()


async def test_ended_tasks_go_after_the_retention(brief, request):
    # A day: the task outlives this server. Then a server told 1 s: on SQLite its sweep at start
    # deletes what ended longer ago; on Redis the keys set to expire at the end go by themselves.
    server = brief("86400")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        task = (await client.post("/v1/tasks", json={"prompt": "kept a day", **SMALL})).json()
        picture = (await wait_status(client, task["id"], {"completed"}))["outputs"][0]["url"]
        assert not await gone(client, task, picture)
    server.kill()
    redis = "redis" in request.node.callspec.id
    server = brief("1")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        if redis:  # its keys still expire after a day: a task that ends under this server goes in 1 s
            task = (await client.post("/v1/tasks", json={"prompt": "kept a second", **SMALL})).json()
            picture = (await wait_status(client, task["id"], {"completed"}))["outputs"][0]["url"]
        await eventually(lambda: gone(client, task, picture), "the task removed after its retention")
    if not redis:
        assert "retention: deleted 1 ended tasks" in server.log()
        assert not (server.data_dir / "outputs" / task["id"]).exists()
