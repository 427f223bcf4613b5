"""Ownership: a key reads and cancels its own tasks and no other's (they are "not found"), an admin
key every task; a task's token reads that task alone; lists, subscribe_all and workers need a key."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import websockets

from tests.security.helpers import TINY, Keyed, bearer
from tests.support import collect, is_terminal, wait_status

QUEUED_FOR_A_WHILE = {**TINY, "width": 512, "height": 512, "num_inference_steps": 40}


async def _create(http: httpx.AsyncClient, key: dict[str, Any], **params: Any) -> dict[str, Any]:
    created = await http.post("/v1/tasks", json={**TINY, **params}, headers=bearer(key))
    assert created.status_code == 201, created.text
    return created.json()


async def _control(ws: Any, message: dict[str, Any]) -> dict[str, Any]:
    """Send a message and return the first control reply (no seq)."""
    await ws.send(orjson.dumps(message).decode())
    while True:
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
        if "seq" not in reply:
            return reply


async def test_a_key_sees_and_cancels_only_its_own_tasks_and_an_admin_every_task(keyed: Keyed) -> None:
    async with httpx.AsyncClient(base_url=keyed.server.base_url, timeout=30) as http:
        mine = await _create(http, keyed.alice, prompt="alice's")
        theirs = await _create(http, keyed.bob, prompt="bob's")
        nowhere = (await http.get("/v1/tasks/ffffffffffffffff", headers=bearer(keyed.bob))).json()

        # bob cannot tell alice's task from one that does not exist
        for path in (f"/v1/tasks/{mine['id']}", f"/v1/tasks/{mine['id']}/events", f"/v1/files/{mine['id']}/0.png"):
            other = await http.get(path, headers=bearer(keyed.bob))
            assert other.status_code == 404 and other.json()["error"]["type"] == "not_found", path
        refused = await http.get(f"/v1/tasks/{mine['id']}", headers=bearer(keyed.bob))
        assert refused.json() == {"error": {**nowhere["error"], "message": f"no task {mine['id']!r}"}}
        cancel = await http.post(f"/v1/tasks/{mine['id']}/cancel", headers=bearer(keyed.bob))
        assert cancel.status_code == 404

        # lists: each key its own, the admin everyone's
        async def listed(key: dict[str, Any]) -> set[str]:
            page = await http.get("/v1/tasks", params={"limit": 200}, headers=bearer(key))
            return {task["id"] for task in page.json()["data"]}

        alice_sees, bob_sees, ops_sees = await listed(keyed.alice), await listed(keyed.bob), await listed(keyed.ops)
        assert mine["id"] in alice_sees and theirs["id"] not in alice_sees
        assert theirs["id"] in bob_sees and mine["id"] not in bob_sees
        assert {mine["id"], theirs["id"]} <= ops_sees

        # the owner and the admin read it; the admin may cancel anyone's
        assert (await http.get(f"/v1/tasks/{mine['id']}", headers=bearer(keyed.alice))).status_code == 200
        assert (await http.get(f"/v1/tasks/{mine['id']}", headers=bearer(keyed.ops))).status_code == 200
        for task, key in ((theirs, keyed.ops), (mine, keyed.alice)):
            assert (await http.post(f"/v1/tasks/{task['id']}/cancel", headers=bearer(key))).status_code in (202, 409)


async def test_a_token_reads_its_task_and_nothing_else(keyed: Keyed) -> None:
    async with httpx.AsyncClient(base_url=keyed.server.base_url, timeout=30) as http:
        task = await _create(http, keyed.alice)
        other = await _create(http, keyed.alice)
        token = {"x-task-token": task["token"]}
        async with httpx.AsyncClient(base_url=keyed.server.base_url, headers=token) as holder:
            assert (await wait_status(holder, task["id"], {"completed", "failed"}))["status"] == "completed"

        # detail, events (SSE) and files, with the token alone
        assert (await http.get(f"/v1/tasks/{task['id']}", params={"token": task["token"]})).status_code == 200
        events = await http.get(f"/v1/tasks/{task['id']}/events", headers=token, params={"previews": "none"})
        assert events.status_code == 200 and "task_postprocess_end" in events.text
        image = await http.get(f"/v1/files/{task['id']}/0.png", params={"token": task["token"]})
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
        # on the socket too, without any key
        followed = await collect(keyed.server.ws_url, task["id"], task["token"])
        assert followed[-1]["type"] == "task_postprocess_end"

        # not another task, not cancelling, not listing
        assert (await http.get(f"/v1/tasks/{other['id']}", headers=token)).status_code == 403
        assert (await http.post(f"/v1/tasks/{other['id']}/cancel", headers=token)).status_code == 401
        assert (await http.get("/v1/tasks", params={"token": task["token"]})).status_code == 401
        # no token and no key: nothing, not even whether the task exists
        anonymous = await http.get(f"/v1/tasks/{task['id']}")
        assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "unauthorized"


async def test_sockets_follow_the_same_rules(keyed: Keyed) -> None:
    server = keyed.server
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http, \
            websockets.connect(server.ws_url) as ws:
        # subscribe_all needs a key
        refused = await _control(ws, {"type": "subscribe_all"})
        assert refused["type"] == "error" and refused["code"] == "unauthorized"

        # without a token a subscription needs the task's key (or an admin's)
        mine = await _create(http, keyed.alice, **QUEUED_FOR_A_WHILE)
        for key, expected in ((None, "unauthorized"), (keyed.bob, "not_found")):
            message = {"type": "subscribe", "id": mine["id"], **({"api_key": key["key"]} if key else {})}
            reply = await _control(ws, message)
            assert reply["type"] == "error" and reply["code"] == expected and reply["id"] == mine["id"]
        wrong = await _control(ws, {"type": "subscribe", "id": mine["id"], "api_key": "lc_wrong"})
        assert wrong["code"] == "unauthorized"
        for key in (keyed.alice, keyed.ops):
            message = {"type": "subscribe", "id": mine["id"], "api_key": key["key"], "previews": "none"}
            reply = await _control(ws, message)
            assert reply["type"] == "subscribed"
            await _control(ws, {"type": "unsubscribe", "id": mine["id"]})
        await http.post(f"/v1/tasks/{mine['id']}/cancel", headers=bearer(keyed.alice))

    # subscribe_all: bob sees bob's tasks only; the admin sees both
    async with websockets.connect(server.ws_url) as bob_ws, \
            websockets.connect(server.ws_url, additional_headers=bearer(keyed.ops)) as ops_ws, \
            httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        assert (await _control(bob_ws, {"type": "subscribe_all", "api_key": keyed.bob["key"]}))["type"] == "subscribed"
        assert (await _control(ops_ws, {"type": "subscribe_all"}))["type"] == "subscribed"
        alices = await _create(http, keyed.alice)
        bobs = await _create(http, keyed.bob)
        bob_saw = await _events_until(bob_ws, {bobs["id"]})
        ops_saw = await _events_until(ops_ws, {alices["id"], bobs["id"]})
        assert {e["id"] for e in bob_saw} == {bobs["id"]}
        assert {e["id"] for e in ops_saw} >= {alices["id"], bobs["id"]}
        # bob's stream is whole and in order, though each task's owner is looked up first
        bob_seqs = [e["seq"] for e in bob_saw]
        assert bob_seqs == list(range(1, len(bob_seqs) + 1))


async def _events_until(ws: Any, ending: set[str]) -> list[dict[str, Any]]:
    """Events from a subscribe_all socket until every task of `ending` has ended."""
    seen, left = [], set(ending)
    while left:
        event = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
        if "seq" in event:
            seen.append(event)
            if is_terminal(event):
                left.discard(event["id"])
    return seen


async def test_wiro_tasks_belong_to_their_key_too(keyed: Keyed) -> None:
    async with httpx.AsyncClient(base_url=keyed.server.base_url, timeout=30) as http:
        run = await http.post(
            "/v1/Run/stabilityai/stable-diffusion-3-medium",
            json={"prompt": "wiro", "width": 512, "height": 512, "steps": 40},
            headers={"x-api-key": keyed.alice["key"]},
        )
        taskid, token = run.json()["taskid"], run.json()["socketaccesstoken"]
        by_id = await http.post("/v1/Task/Detail", json={"taskid": taskid}, headers={"x-api-key": keyed.bob["key"]})
        assert by_id.json()["result"] is False and by_id.json()["errors"][0]["code"] == 1
        # the task token alone reads it (as Wiro's page does), but does not cancel it
        assert (await http.post("/v1/Task/Detail", json={"tasktoken": token})).json()["result"] is True
        assert (await http.post("/v1/Task/Cancel", json={"tasktoken": token})).status_code == 401
        other = await http.post("/v1/Task/Cancel", json={"tasktoken": token}, headers={"x-api-key": keyed.bob["key"]})
        assert other.json()["result"] is False
        # and the native API agrees: bob does not see it, alice cancels it
        assert (await http.get(f"/v1/tasks/{taskid}", headers=bearer(keyed.bob))).status_code == 404
        cancelled = await http.post(f"/v1/tasks/{taskid}/cancel", headers=bearer(keyed.alice))
        assert cancelled.status_code in (202, 409)
