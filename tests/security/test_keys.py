"""API keys: each way of sending one, 401s in each API's own shape, Wiro's signature and its nonce,
revocation (sockets too), keys kept hashed, and keys in Redis."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from latentcast.server.security.wiro_signature import wiro_signature
from tests.security.helpers import TINY, Keyed, bearer, create_key, keys_cli, revoke_key, sse_until_revoked
from tests.support import RedisServer, ServerProcess, eventually

WIRO_RUN = "/v1/Run/stabilityai/stable-diffusion-3-medium"
WIRO_TINY = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2}
# A task that runs far longer than a revocation takes to be seen (about a second).
LONG = {"prompt": "long", "width": 1024, "height": 1024, "num_inference_steps": 100}


def signed(key: dict, nonce: str, secret: str | None = None) -> dict[str, str]:
    signature = wiro_signature(key["key"], secret or key["secret"], nonce)
    return {"x-api-key": key["key"], "x-nonce": nonce, "x-signature": signature}


async def test_a_key_is_accepted_as_bearer_x_api_key_or_bare_authorization(keyed: Keyed) -> None:
    key = keyed.alice["key"]
    async with httpx.AsyncClient(base_url=keyed.server.base_url) as http:
        for headers in ({"Authorization": f"Bearer {key}"}, {"x-api-key": key}, {"Authorization": key}):
            created = await http.post("/v1/tasks", json=TINY, headers=headers)
            assert created.status_code == 201, (headers, created.text)
            # the owner is kept out of the task's public view: neither the key nor its id shows
            assert key not in created.text and keyed.alice["id"] not in created.text
            assert "owner" not in created.json()


async def test_a_missing_or_wrong_key_is_a_401_in_each_apis_own_shape(keyed: Keyed) -> None:
    wrong = {"Authorization": "Bearer lc_not-a-key"}
    altered = {"x-api-key": keyed.alice["key"][:-1] + "x"}
    async with httpx.AsyncClient(base_url=keyed.server.base_url) as http:
        for headers in ({}, wrong, altered):
            for method, path in (("POST", "/v1/tasks"), ("GET", "/v1/tasks"), ("GET", "/v1/workers")):
                answer = await http.request(method, path, json=TINY if method == "POST" else None, headers=headers)
                assert answer.status_code == 401, (path, answer.text)
                assert answer.json()["error"]["type"] == "unauthorized"
                assert answer.headers["www-authenticate"].startswith("Bearer")

            aiml_body = {"model": "stable-diffusion-v3-medium", "prompt": "p"}
            aiml = await http.post("/v1/images/generations", json=aiml_body, headers=headers)
            assert aiml.status_code == 401
            refused = aiml.json()  # AI/ML's fields, and the error object the openai SDK reads
            assert refused["statusCode"] == 401 and refused["error"]["type"] == "authentication_error"
            assert refused["error"]["message"] == refused["message"]
            segmind = await http.post("/v1/stable-diffusion-3-medium-txt2img", json={"prompt": "p"}, headers=headers)
            assert segmind.status_code == 401 and "error" in segmind.json()
            tti_body = {"prompt": "p", "width": 512, "height": 512}
            tti = await http.post("/api/generate/sdv3/textToImage", json=tti_body, headers=headers)
            assert tti.status_code == 401 and tti.json()["code"] == -1 and tti.json()["data"] is None
            wiro = await http.post(WIRO_RUN, json=WIRO_TINY, headers=headers)
            assert wiro.status_code == 401 and wiro.json()["result"] is False and wiro.json()["errors"]

        # what is not a task's: liveness, readiness, the models served
        for path in ("/healthz", "/readyz", "/v1/models"):
            assert (await http.get(path)).status_code == 200
        # nothing was queued by any refused request
        listed = (await http.get("/v1/tasks", params={"limit": 200}, headers=bearer(keyed.ops))).json()["data"]
        assert not [t for t in listed if t["params"]["prompt"] == "p"]


async def test_wiro_signed_requests_are_checked_and_a_nonce_works_once(keyed: Keyed) -> None:
    key = keyed.bob
    nonce = str(time.time_ns())
    async with httpx.AsyncClient(base_url=keyed.server.base_url) as http:
        run = await http.post(WIRO_RUN, json=WIRO_TINY, headers=signed(key, nonce))
        assert run.status_code == 200 and run.json()["result"] is True, run.text

        replay = await http.post(WIRO_RUN, json=WIRO_TINY, headers=signed(key, nonce))
        assert replay.status_code == 401 and "already used" in replay.json()["errors"][0]["message"]

        forged = await http.post(WIRO_RUN, json=WIRO_TINY, headers=signed(key, nonce + "1", secret="lcs_guess"))
        assert forged.status_code == 401 and "x-signature" in forged.json()["errors"][0]["message"]
        # a forged request does not use the nonce up: the real owner may still use it
        labelled = signed(key, nonce + "1")
        labelled["x-signature"] = "SHA2-256(stdin)= " + labelled["x-signature"]  # as `openssl dgst` prints it
        assert (await http.post(WIRO_RUN, json=WIRO_TINY, headers=labelled)).json()["result"] is True

        half = {"x-api-key": key["key"], "x-nonce": str(time.time_ns())}
        assert (await http.post(WIRO_RUN, json=WIRO_TINY, headers=half)).status_code == 401
        # one nonce per key: another key may use the same nonce
        assert (await http.post(WIRO_RUN, json=WIRO_TINY, headers=signed(keyed.alice, nonce))).status_code == 200
        # the detail of its task by taskid, signed too
        by_id = {"taskid": run.json()["taskid"]}
        detail = await http.post("/v1/Task/Detail", json=by_id, headers=signed(key, nonce + "2"))
        assert detail.json()["result"] is True and detail.json()["tasklist"][0]["id"] == run.json()["taskid"]


async def test_a_revoked_key_stops_at_once_and_its_sockets_are_closed(keyed: Keyed) -> None:
    data_dir = keyed.server.data_dir
    key = create_key(data_dir, "temp")  # made while the server runs: usable within a second
    server = keyed.server
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        await eventually(lambda: _answers(http, key, 200), "the new key accepted")
        # one socket authenticated in its handshake, one by the key in its messages (as browsers do)
        by_header = await websockets.connect(server.ws_url, additional_headers=bearer(key))
        by_message = await websockets.connect(server.ws_url)
        await by_message.send(orjson.dumps({"type": "subscribe_all", "api_key": key["key"]}).decode())
        assert orjson.loads(await by_message.recv())["type"] == "subscribed"
        bystander = await websockets.connect(server.ws_url, additional_headers=bearer(keyed.alice))

        revoke_key(data_dir, key["id"])
        for ws in (by_header, by_message):  # closed as soon as the server's key cache refreshes
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 60)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        refused = await http.get("/v1/tasks", headers=bearer(key))
        assert refused.status_code == 401
        with pytest.raises(InvalidStatus) as denied:
            await websockets.connect(server.ws_url, additional_headers=bearer(key))
        assert denied.value.response.status_code == 401
        # other keys' sockets stay open
        await bystander.send(orjson.dumps({"type": "subscribe_all"}).decode())
        assert orjson.loads(await asyncio.wait_for(bystander.recv(), 60))["type"] == "subscribed"
        await bystander.close()


async def test_a_revoked_keys_sse_stream_ends_while_its_task_goes_on(keyed: Keyed) -> None:
    data_dir, server = keyed.server.data_dir, keyed.server
    key = create_key(data_dir, "sse")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        await eventually(lambda: _answers(http, key, 200), "the new key accepted")
        task = (await http.post("/v1/tasks", json=LONG, headers=bearer(key))).json()
        try:
            events = await sse_until_revoked(server.base_url, task["id"], key, lambda: revoke_key(data_dir, key["id"]))
            assert events and not any(e["type"] in ("task_postprocess_end", "task_cancel") for e in events)
            # it ended for the key, not for the task: the task runs on, its token still reads it
            detail = await http.get(f"/v1/tasks/{task['id']}", params={"token": task["token"]})
            assert detail.json()["status"] not in ("completed", "cancelled", "failed")
        finally:
            await http.post(f"/v1/tasks/{task['id']}/cancel", headers=bearer(keyed.ops))


def test_keys_are_stored_hashed_and_listed_without_secrets(tmp_path: Path) -> None:
    key = create_key(tmp_path, "ci", "--rate-per-minute", "60", "--max-in-flight", "2")
    assert key["key"].startswith("lc_") and len(key["key"]) > 40 and key["secret"].startswith("lcs_")
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("latentcast.db*"))
    assert key["id"].encode() in stored
    assert key["key"].encode() not in stored and key["secret"].encode() not in stored

    listed = keys_cli("list", "--json", "--data-dir", str(tmp_path))
    [entry] = orjson.loads(listed.stdout)
    assert entry == {**entry, "id": key["id"], "name": "ci", "admin": False, "rate_per_minute": 60,
                     "max_in_flight": 2, "revoked_at": None}
    assert key["key"] not in listed.stdout and key["secret"] not in listed.stdout and "digest" not in entry

    assert keys_cli("revoke", key["id"], "--data-dir", str(tmp_path)).returncode == 0
    [entry] = orjson.loads(keys_cli("list", "--json", "--data-dir", str(tmp_path)).stdout)
    assert entry["revoked_at"] is not None
    unknown = keys_cli("revoke", "key_000000000000", "--data-dir", str(tmp_path))
    assert unknown.returncode == 1 and "no key" in unknown.stderr
    text = keys_cli("list", "--data-dir", str(tmp_path)).stdout
    assert key["id"] in text and "revoked" in text


async def test_keys_kept_in_redis_work_across_the_cluster(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    server = None
    try:
        key = create_key(tmp_path / "cli", "shared", broker=redis.url)
        # the key lives in Redis, not in the CLI's data dir: a server with another data dir sees it
        server = ServerProcess(tmp_path / "server", "--broker", redis.url).start()
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            assert (await http.post("/v1/tasks", json=TINY)).status_code == 401
            assert (await http.post("/v1/tasks", json=TINY, headers=bearer(key))).status_code == 201
            nonce = str(time.time_ns())
            assert (await http.post(WIRO_RUN, json=WIRO_TINY, headers=signed(key, nonce))).status_code == 200
            assert (await http.post(WIRO_RUN, json=WIRO_TINY, headers=signed(key, nonce))).status_code == 401
            revoke_key(tmp_path / "cli", key["id"], broker=redis.url)
            await eventually(lambda: _answers(http, key, 401), "the revoked key refused")
    finally:
        if server is not None:
            server.kill()
        redis.stop()


async def _answers(http: httpx.AsyncClient, key: dict[str, Any], status: int) -> bool:
    """Whether `GET /v1/tasks` with `key` answers `status`."""
    return (await http.get("/v1/tasks", headers=bearer(key))).status_code == status
