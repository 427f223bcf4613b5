"""The rest of the native API: reads, lists, files, models, health, and socket errors."""

from __future__ import annotations

import re
from urllib.parse import unquote

import httpx
import orjson
import pytest
import websockets

from tests.support import SMALL, collect, types, wait_status


async def test_created_task_detail_and_urls(server, client):
    response = await client.post("/v1/tasks", json={"prompt": "p", **SMALL, "seed": 3})
    assert response.status_code == 201
    task = response.json()
    assert re.fullmatch(r"[0-9a-f]{48}", task["token"]) and task["status"] == "queued"
    assert response.headers["location"] == task["urls"]["self"]
    assert task["urls"] == {
        "self": f"{server.base_url}/v1/tasks/{task['id']}",
        "cancel": f"{server.base_url}/v1/tasks/{task['id']}/cancel",
        "events": f"{server.base_url}/v1/tasks/{task['id']}/events",
        "deliveries": f"{server.base_url}/v1/tasks/{task['id']}/deliveries",
        "socket": f"ws://127.0.0.1:{server.port}/v1/ws",
        "page": f"{server.base_url}/t/{task['id']}?token={task['token']}",
    }
    detail = (await client.get(task["urls"]["self"])).json()
    assert "token" not in detail
    assert detail["params"]["prompt"] == "p" and detail["seed"] == 3
    await collect(server.ws_url, task["id"], task["token"])


async def test_wrong_token_is_refused_and_unknown_task_is_404(server, client):
    task = (await client.post("/v1/tasks", json={"prompt": "p", **SMALL})).json()
    wrong = await client.get(f"/v1/tasks/{task['id']}", params={"token": "x" * 32})
    assert wrong.status_code == 403
    assert wrong.json()["error"]["type"] == "forbidden"
    right = await client.get(f"/v1/tasks/{task['id']}", headers={"x-task-token": task["token"]})
    assert right.status_code == 200
    missing = await client.get("/v1/tasks/ffffffffffffffff")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"type": "not_found", "message": "no task 'ffffffffffffffff'"}}
    await collect(server.ws_url, task["id"], task["token"])


async def test_odd_paths_under_the_api_are_json_404s_naming_the_path(server, client):
    # starlette's slash redirect answered `/v1/tasks/%2F` with an empty 307 to the task list
    odd = ["/v1/tasks/%2F", "/v1/tasks/", "/v1/tasks/%2F/cancel", "//v1/tasks", "/v1/tasks/x/events/", "/v1/",
           "/v1/files/x/%2F"]
    for path in odd:
        for method in ("GET", "POST"):
            answer = await client.request(method, server.base_url + path)
            assert answer.status_code in (404, 405), (method, path, answer.status_code)
            error = answer.json()["error"]
            if answer.status_code == 404:
                assert error == {"type": "not_found", "message": f"no such path: {unquote(path)}"}, (method, path)
    # encoded dots are ids like any other: a task that does not exist
    for dots in ("%2e%2e", "%2E"):
        answer = await client.get(f"{server.base_url}/v1/tasks/{dots}")
        assert answer.status_code == 404 and answer.json()["error"]["type"] == "not_found", dots


async def test_list_filters_by_status_and_pages_with_a_cursor(start_server):
    server = start_server("--workers", "0")
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        ids = [(await client.post("/v1/tasks", json={"prompt": str(i), **SMALL})).json()["id"] for i in range(5)]
        await client.post(f"/v1/tasks/{ids[0]}/cancel")
        seen, cursor = [], None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/v1/tasks", params=params)).json()
            seen += [t["id"] for t in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ids[::-1]  # newest first, each once
        queued = (await client.get("/v1/tasks", params={"status": "queued"})).json()["data"]
        assert [t["id"] for t in queued] == ids[:0:-1]
        assert [t["position"] for t in queued] == [4, 3, 2, 1]
        cancelled = (await client.get("/v1/tasks", params={"status": "cancelled"})).json()["data"]
        assert [t["id"] for t in cancelled] == [ids[0]]

        for params, field in (({"status": "done"}, "status"), ({"limit": "0"}, "limit"), ({"cursor": "zz"}, "cursor")):
            response = await client.get("/v1/tasks", params=params)
            assert response.status_code == 422
            assert response.json()["error"]["fields"][0]["field"] == field


async def test_queue_positions_move_up_when_a_task_leaves(start_server):
    server = start_server("--workers", "0")
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        tasks = [(await client.post("/v1/tasks", json={"prompt": str(i), **SMALL})).json() for i in range(3)]
        assert [t["position"] for t in tasks] == [1, 2, 3]
        async with websockets.connect(server.ws_url) as ws:
            await ws.send(orjson.dumps({"type": "subscribe", "id": tasks[2]["id"], "token": tasks[2]["token"]}).decode())
            assert orjson.loads(await ws.recv())["type"] == "subscribed"
            assert orjson.loads(await ws.recv())["message"] == {"position": 3, "queue_length": 3}
            await client.post(f"/v1/tasks/{tasks[0]['id']}/cancel")
            moved = orjson.loads(await ws.recv())
            assert (moved["type"], moved["seq"], moved["message"]["position"]) == ("task_queue", 2, 2)
        assert (await client.get(f"/v1/tasks/{tasks[2]['id']}")).json()["position"] == 2


@pytest.mark.parametrize("mode", [(), ("--worker-threads",)], ids=["worker process", "worker threads"])
async def test_queue_positions_move_up_the_moment_the_worker_takes_the_head(start_server, mode):
    # One process polls nothing: the position event exists only if taking the head woke the
    # announcer, in the API process, even when the worker runs in a process of its own.
    server = start_server(*mode)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        blocker = (await client.post("/v1/tasks", json={"prompt": "b", "width": 256, "height": 256,
                                                         "num_inference_steps": 100})).json()
        await wait_status(client, blocker["id"], {"running"})
        head, last = [(await client.post("/v1/tasks", json={"prompt": p, **SMALL})).json() for p in ("h", "l")]
        assert (head["position"], last["position"]) == (1, 2)
        await client.post(f"/v1/tasks/{blocker['id']}/cancel")  # the worker is free: it takes `head`
        events = await collect(server.ws_url, last["id"], last["token"], previews="none")
    assert types(events)[:3] == ["task_queue", "task_queue", "task_accept"]
    assert [e["message"] for e in events[:2]] == [{"position": 2, "queue_length": 2}, {"position": 1, "queue_length": 1}]
    assert types(events)[-1] == "task_postprocess_end"


async def test_files_are_served_only_by_their_names(server, client):
    task = (await client.post("/v1/tasks", json={"prompt": "p", **SMALL, "output_format": "jpeg"})).json()
    events = await collect(server.ws_url, task["id"], task["token"])
    output = events[-1]["message"][0]
    assert output["name"] == "0.jpg"
    response = await client.get(f"/v1/files/{task['id']}/0.jpg")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert response.content.startswith(b"\xff\xd8")
    for path in (
        f"/v1/files/{task['id']}/1.jpg",
        f"/v1/files/{task['id']}/..%2F..%2Flatentcast.db",
        f"/v1/files/{task['id']}/%2e%2e",
        "/v1/files/..%2F..%2F/0.jpg",
    ):
        assert (await client.get(path)).status_code == 404, path


async def test_models_health_and_readiness(client):
    models = (await client.get("/v1/models")).json()
    assert models["data"][0]["id"] == "builtin:tiny"
    assert "stable-diffusion-v3-medium" in models["data"][0]["aliases"]
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = (await client.get("/readyz")).json()
    assert ready["ready"] is True and ready["workers"][0]["name"].endswith("-cpu-0")
    workers = (await client.get("/v1/workers")).json()["data"]
    assert [(w["name"], w["model"], w["device"]) for w in workers] == [(ready["workers"][0]["name"], "builtin:tiny", "cpu")]


async def test_socket_errors_name_the_problem_and_keep_the_socket(server, client):
    task = (await client.post("/v1/tasks", json={"prompt": "p", **SMALL})).json()
    async with websockets.connect(server.ws_url) as ws:
        for message, code in (
            ("not json", "invalid_json"),
            ("[1]", "invalid_message"),
            ('{"type": "dance"}', "unknown_type"),
            ('{"type": "subscribe"}', "invalid_id"),
            ('{"type": "subscribe", "id": "nope"}', "not_found"),
            (orjson.dumps({"type": "subscribe", "id": task["id"], "token": "bad"}).decode(), "forbidden"),
            (orjson.dumps({"type": "subscribe", "id": task["id"], "since": -1}).decode(), "invalid_since"),
            (orjson.dumps({"type": "subscribe", "id": task["id"], "previews": "all"}).decode(), "invalid_previews"),
            ('{"type": "task_info", "tasktoken": "nope"}', "not_found"),
            ('{"type": "unsubscribe", "id": "nope"}', "not_subscribed"),
            ('{"type": "subscribe", "id": "' + "x" * 70000 + '"}', "message_too_large"),
        ):
            await ws.send(message)
            reply = orjson.loads(await ws.recv())
            assert (reply["type"], reply["code"]) == ("error", code), message[:80]
    await collect(server.ws_url, task["id"], task["token"])


async def test_subscribe_all_sees_every_task(server, client):
    async with websockets.connect(server.ws_url) as ws:
        await ws.send('{"type": "subscribe_all"}')
        assert orjson.loads(await ws.recv())["type"] == "subscribed"
        task = (await client.post("/v1/tasks", json={"prompt": "p", **SMALL})).json()
        seen = []
        while True:
            event = orjson.loads(await ws.recv())
            if event["id"] == task["id"]:
                seen.append(event["type"])
                if event["type"] == "task_postprocess_end":
                    break
    assert seen[0] == "task_queue" and "task_start" in seen
