"""Hostile input wherever JSON is accepted: a 4xx that says what is wrong (never a 500), nothing
queued, the server still up. Also: output file names never come from the request path."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
import websockets

from tests.security.helpers import BODIES, TINY, count_tasks, in_its_shape, parse_response, raw_exchange
from tests.support import ServerProcess, subscribe

DEEP = b"[" * 2040 + b"]" * 2040  # within --max-body-bytes 4096, far deeper than any parser recurses
JSON = {"content-type": "application/json"}

# (body, headers, status, error type, field, rule) for POST /v1/tasks
NATIVE = [
    (b"", JSON, 400, "invalid_json", None, None),
    (b" \n ", JSON, 400, "invalid_json", None, None),
    (DEEP, JSON, 400, "invalid_json", None, None),
    (b'{"prompt": "\xff\xfe"}', JSON, 400, "invalid_json", None, None),
    ('{"prompt": "a"}'.encode("utf-16"), JSON, 400, "invalid_json", None, None),
    (b'\xef\xbb\xbf{"prompt": "a"}', JSON, 400, "invalid_json", None, None),
    (b'{"prompt": "\\ud800"}', JSON, 400, "invalid_json", None, None),
    (b'{"prompt": "a\x00b"}', JSON, 400, "invalid_json", None, None),  # raw controls are not JSON
    (b'{"prompt": "a\\u0000b"}', JSON, 422, "validation_error", "prompt", "control_characters"),
    (b'{"prompt": "a", "negative_prompt": "\\u001b[2J"}', JSON, 422, "validation_error", "negative_prompt",
     "control_characters"),
    (b'{"prompt": "a", "guidance_scale": NaN}', JSON, 422, "validation_error", "guidance_scale", "finite_number"),
    (b'{"prompt": "a", "guidance_scale": -Infinity}', JSON, 422, "validation_error", "guidance_scale",
     "finite_number"),
    (b'{"prompt": "a", "shift": 1e999}', JSON, 422, "validation_error", "shift", "finite_number"),
    (b'{"prompt": "a", "seed": 18446744073709551616}', JSON, 422, "validation_error", "seed", "less_than_equal"),
    (b'{"prompt": "a", "width": 1' + b"0" * 400 + b"}", JSON, 422, "validation_error", "width", "less_than_equal"),
    (b'{"prompt": "a", "prompt": "b"}', JSON, 422, "validation_error", "prompt", "duplicate_key"),
    (b'{"prompt": {"$ne": ""}}', JSON, 422, "validation_error", "prompt", "string_type"),
    (b'{"prompt": "a", "params": {"nested": true}}', JSON, 422, "validation_error", "params", "unknown_field"),
    (b"[]", JSON, 422, "validation_error", "body", "object_type"),
    (b"null", JSON, 422, "validation_error", "body", "object_type"),
    (b'"prompt"', JSON, 422, "validation_error", "body", "object_type"),
    (b"prompt=a&width=64", {"content-type": "application/x-www-form-urlencoded"}, 400, "invalid_json", None, None),
    (b"--B\r\nContent-Disposition: form-data\r\n\r\na\r\n--B--\r\n",  # a form's part with no name
     {"content-type": "multipart/form-data; boundary=B"}, 400, "validation_error", "body", "multipart"),
]

# bodies every provider endpoint must refuse in its own shape
HOSTILE = [
    b"",
    DEEP,
    b"\xff\xfe\x00{",
    b'{"prompt": "\\ud800"}',
    b'{"prompt": "a", "prompt": "b"}',
    b'{"prompt": NaN, "taskid": Infinity, "tasktoken": -Infinity}',
    b'{"prompt": "a", "seed": 1' + b"0" * 400 + b"}",
    b"[1, 2]",
    b"null",
    b'{"taskid": {"$gt": ""}, "tasktoken": ["x"]}',
    b'--B\r\nContent-Disposition: form-data; name="prompt"\r\nContent-Type: text/plain; charset=nope\r\n\r\na\r\n--B--',
]
CONTENT_TYPES = [
    "application/json", "multipart/form-data; boundary=B", "application/x-www-form-urlencoded", "text/plain"
]


@pytest.fixture
async def http(limited: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `limited`; at the end, the server is still up."""
    async with httpx.AsyncClient(base_url=limited.base_url) as client:
        yield client
        assert (await client.get("/healthz")).status_code == 200
    assert limited.process is not None and limited.process.poll() is None


@pytest.mark.parametrize(("body", "headers", "status", "kind", "field", "rule"), NATIVE)
async def test_hostile_bodies_of_the_native_api(
    http: httpx.AsyncClient, body: bytes, headers: dict, status: int, kind: str, field: str | None, rule: str | None
) -> None:
    before = await count_tasks(http)
    answer = await http.post("/v1/tasks", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["type"] == kind and error["message"]
    if field is not None:
        assert [(f["field"], f["rule"]) for f in error["fields"]] == [(field, rule)]
        assert field in error["message"]
    assert await count_tasks(http) == before


async def test_tab_newline_and_return_are_kept_in_prompts(http: httpx.AsyncClient) -> None:
    answer = await http.post("/v1/tasks", json={**TINY, "prompt": "a\tb\nc\r\nd"})
    assert answer.status_code == 201 and answer.json()["params"]["prompt"] == "a\tb\nc\r\nd"


@pytest.mark.parametrize("path", [p for p in BODIES if p != "/v1/tasks"])
async def test_hostile_bodies_of_the_providers_apis(http: httpx.AsyncClient, path: str) -> None:
    before = await count_tasks(http)
    for body in HOSTILE:
        for content_type in CONTENT_TYPES:
            in_its_shape(path, await http.post(path, content=body, headers={"content-type": content_type}))
    assert await count_tasks(http) == before


@pytest.mark.parametrize(
    "path", ["/v1/images/generations", "/v1/Run/stabilityai/stable-diffusion-3-medium",
             "/v1/stable-diffusion-3-medium-txt2img", "/api/generate/sdv3/textToImage"],
)
async def test_control_characters_are_refused_by_every_provider(http: httpx.AsyncClient, path: str) -> None:
    before = await count_tasks(http)
    answer = await http.post(path, json={**BODIES[path], "prompt": "a\x00b"})
    in_its_shape(path, answer)
    assert "control character U+0000" in answer.text and "prompt" in answer.text
    assert await count_tasks(http) == before


async def test_cancelling_with_hostile_bodies_and_ids(http: httpx.AsyncClient) -> None:
    task = (await http.post("/v1/tasks", json=TINY)).json()
    for path in (f"/v1/tasks/{task['id']}/cancel", "/v1/tasks/%2e%2e/cancel", "/v1/tasks/%00/cancel"):
        for body in HOSTILE:
            answer = await http.post(path, content=body, headers=JSON)
            assert answer.status_code in (202, 404, 409) and answer.json(), (path, answer.text)
    assert (await http.get(f"/v1/tasks/{task['id']}")).json()["status"] == "cancelled"


async def test_hostile_socket_messages_are_answered_and_the_socket_stays(
    limited: ServerProcess, http: httpx.AsyncClient
) -> None:
    task = (await http.post("/v1/tasks", json=TINY)).json()
    async with websockets.connect(limited.ws_url) as ws:
        for message, code in (
            (DEEP.decode(), "invalid_json"),
            (b"\xff\xfe", "invalid_json"),
            ("", "invalid_json"),
            ('{"type": "subscribe", "type": "unsubscribe", "id": "x"}', "invalid_json"),
            ('{"type": "subscribe", "id": "\\ud800"}', "invalid_json"),
            ('{"type": "subscribe", "id": "x", "since": NaN}', "invalid_since"),
            ('{"type": "subscribe", "id": "x", "since": 1e999}', "invalid_since"),
            ('{"type": "subscribe", "id": "x", "since": 100000000000000000000000000000}', "not_found"),
            ('{"type": ["subscribe"]}', "unknown_type"),
            ('{"type": "subscribe", "id": {"$ne": ""}}', "invalid_id"),
            ('{"type": "task_info", "tasktoken": 1e999}', "invalid_tasktoken"),
        ):
            await ws.send(message)
            reply = orjson.loads(await ws.recv())
            assert (reply["type"], reply["code"]) == ("error", code), message[:80]
        await subscribe(ws, task["id"], task["token"])
        assert orjson.loads(await ws.recv())["type"] == "subscribed"


@pytest.mark.parametrize(
    "name",
    [
        "..%2F..%2Fetc%2Fpasswd",
        "../../etc/passwd",
        "%2e%2e",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "..%5C..%5Cwin.ini",
        "..\\..\\win.ini",
        "%2Fetc%2Fpasswd",
        "/etc/passwd",
        "0.png%00.txt",
        "0.png%00",
        "%00",
        "0.png/..",
    ],
)
async def test_file_names_never_come_from_the_path(limited: ServerProcess, http: httpx.AsyncClient, name: str) -> None:
    """Sent as raw bytes: an HTTP client would tidy the dot segments away before they left."""
    task = (await http.post("/v1/tasks", json=TINY)).json()
    for task_part in (task["id"], "..", "%2e%2e", "..%2F" + task["id"]):
        target = f"/v1/files/{task_part}/{name}?token={task['token']}"
        request = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        status, headers, body = parse_response(raw_exchange(limited.port, request.encode()))
        assert status in (400, 404), (target, status, body)
        assert headers["content-type"] == "application/json" and orjson.loads(body)["error"]["type"], target
