"""Tokens and keys never reach the server's logs nor an error's body: a task driven end to end with
a key and its token (HTTP, SSE, WebSocket, files), then every kind of wrong credential and bad
request, on a server logging text and one logging JSON."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import websockets

from latentcast.server.observability.logs import JSONFormatter, TextFormatter
from tests.security.helpers import TINY, bearer, create_key
from tests.support import ServerProcess, collect

WRONG_TOKEN = "wrongTOKENwrongTOKENwrongTOKEN12"
MADE_UP_KEY = "lc_madeupKEYmadeupKEYmadeupKEYmadeupKEY1234"
WIRO_DETAIL = "/v1/Task/Detail"


@pytest.fixture(scope="module", params=["text", "json"])
def logging_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp(f"leaks-{request.param}")
    key = create_key(folder, "leaky")
    server = ServerProcess(folder, "--log-format", request.param, "--preview-min-interval", "0").start()
    yield server, key
    server.kill()


async def _errors(http: httpx.AsyncClient, task: dict[str, Any], key: dict[str, Any]) -> list[httpx.Response]:
    """Every way of getting it wrong, each of them carrying secrets somewhere in the request."""
    token, task_id = task["token"], task["id"]
    return [
        await http.get(f"/v1/tasks/{task_id}", params={"token": WRONG_TOKEN}),
        await http.get(f"/v1/tasks/{task_id}/events", params={"token": WRONG_TOKEN}),
        await http.get(f"/v1/files/{task_id}/9.png", params={"token": token}),
        await http.post("/v1/tasks", json=TINY, headers={"Authorization": f"Bearer {MADE_UP_KEY}"}),
        await http.post("/v1/tasks", json=TINY, headers={"x-api-key": MADE_UP_KEY}),
        await http.get("/v1/tasks", params={"api_key": MADE_UP_KEY, "token": token}),
        # secrets as values of a bad body: refused by field name, the values never echoed
        await http.post("/v1/tasks", json={**TINY, "token": token, "api_key": key["key"]}, headers=bearer(key)),
        await http.post("/v1/tasks", json={**TINY, "seed": token}, headers=bearer(key)),
        await http.post("/v1/tasks", content=f'{{"prompt": "{key["key"]}", "prompt": 1}}', headers=bearer(key)),
        await http.post(WIRO_DETAIL, json={"tasktoken": WRONG_TOKEN}),
        await http.post(WIRO_DETAIL, json={"taskid": task_id}, headers={
            "x-api-key": key["key"], "x-nonce": "1", "x-signature": WRONG_TOKEN}),
        await http.post("/v1/images/generations", json={"prompt": key["secret"]}, headers={"x-api-key": MADE_UP_KEY}),
    ]


async def test_no_token_or_key_in_logs_or_error_bodies(logging_server: Any) -> None:
    server, key = logging_server
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        task = (await http.post("/v1/tasks", json=TINY, headers=bearer(key))).json()
        token = task["token"]
        events = await collect(server.ws_url, task["id"], token)
        assert events[-1]["type"] == "task_postprocess_end"
        detail = (await http.get(f"/v1/tasks/{task['id']}", params={"token": token})).json()
        assert detail["status"] == "completed"
        assert (await http.get(detail["outputs"][0]["url"], params={"token": token})).status_code == 200
        events_url = f"/v1/tasks/{task['id']}/events"
        async with http.stream("GET", events_url, params={"token": token, "previews": "none"}) as sse:
            assert "task_postprocess_end" in (await sse.aread()).decode()
        # uvicorn logs each socket's handshake, query string and all
        query = f"?token={token}&api_key={key['key']}&tasktoken={WRONG_TOKEN}"
        async with websockets.connect(server.ws_url + query) as ws:
            await ws.send(orjson.dumps({"type": "subscribe", "id": task["id"], "token": WRONG_TOKEN}).decode())
            await ws.send(orjson.dumps({"type": "subscribe_all", "api_key": MADE_UP_KEY}).decode())
            await ws.send(orjson.dumps({"type": "task_info", "tasktoken": WRONG_TOKEN}).decode())
            replies = [await ws.recv() for _ in range(3)]
        errors = await _errors(http, task, key)

    assert all(400 <= answer.status_code < 500 or answer.json().get("result") is False for answer in errors)
    secrets = {"task token": token, "key": key["key"], "key secret": key["secret"], "wrong token": WRONG_TOKEN,
               "made-up key": MADE_UP_KEY}
    log = server.log()
    assert task["id"] in log and "/v1/ws?token=***" in log  # it did log the task and the handshake
    for name, secret in secrets.items():
        assert secret not in log, f"the {name} is in the server's log"
        for answer in errors:
            assert secret not in answer.text, f"the {name} is in {answer.request.method} {answer.request.url.path}"
        for reply in replies:
            assert secret not in reply, f"the {name} is in a socket error"


async def test_handshake_lines_mask_every_query_value_and_refusals_log_no_error(logging_server: Any) -> None:
    server, key = logging_server
    query = f"?key={key['key']}&secret={key['secret']}&t={WRONG_TOKEN}&{MADE_UP_KEY}"
    async with websockets.connect(server.ws_url + query) as ws:  # accepted
        await ws.send(orjson.dumps({"type": "subscribe_all", "api_key": key["key"]}).decode())
        assert orjson.loads(await ws.recv())["type"] == "subscribed"
    refusals = [  # a bad key, another site's page, no such socket: each refused before it opens
        (server.ws_url + query, {"Authorization": f"Bearer {MADE_UP_KEY}"}, 401),
        (server.ws_url + query, {"Origin": "https://elsewhere.example"}, 403),
        (f"ws://127.0.0.1:{server.port}/v1/nowhere{query}", {}, 403),
    ]
    for url, headers, status in refusals:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url, additional_headers=headers)
        assert refused.value.response.status_code == status

    log = server.log()
    assert log.count("?key=***&secret=***&t=***&lc_***") >= 4, log[-3000:]  # each handshake, logged by name
    for secret in (key["key"], key["secret"], WRONG_TOKEN, MADE_UP_KEY):
        assert secret not in log
    errors = [line for line in log.splitlines() if " ERROR " in line or '"level":"error"' in line]
    assert errors == []


@pytest.mark.parametrize("formatter", [TextFormatter("%(message)s"), JSONFormatter()], ids=["text", "json"])
def test_uvicorn_access_lines_are_masked_if_ever_turned_on(formatter: logging.Formatter) -> None:
    """`serve` keeps uvicorn's access log off; were it on, its lines carry query strings."""
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/v1/files/abc/0.png?token={WRONG_TOKEN}&api_key={MADE_UP_KEY}&k={WRONG_TOKEN}", "1.1", 200),
        None,
    )
    line = formatter.format(record)
    assert "/v1/files/abc/0.png?token=***&api_key=***&k=***" in line
    assert WRONG_TOKEN not in line and MADE_UP_KEY not in line
