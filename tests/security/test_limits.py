"""Every limit on what a client may send or hold, with its status code and an error that names it:
operator limits on a task, body size and pace, request heads (slow-loris), requests per minute
and tasks in flight (per address and per key), and the WebSocket's message size, subscriptions,
idle time and pings."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from starlette.routing import Route
from websockets.exceptions import ConnectionClosed

from latentcast.server import compat
from latentcast.server.api import websocket
from latentcast.server.api.routes import routes as api_routes
from latentcast.server.security.ratelimit import InFlight, RateLimiter
from tests.security.helpers import BODIES, TINY, bearer, count_tasks, create_key, parse_response, raw_exchange
from tests.support import ServerProcess, eventually, subscribe

OVERSIZED = "x" * 5000  # --max-body-bytes 4096 on `limited`
# Only a safety net: each wait below ends as soon as what it waits for happens, however busy the
# machine. Timings are asserted only as lower bounds (a limit must not cut a client early), since
# load can only make things later.
SAFETY_NET = 120.0


def _is_413(answer: httpx.Response | tuple[int, dict[str, str], bytes]) -> None:
    status, headers, body = (
        (answer.status_code, dict(answer.headers), answer.content) if isinstance(answer, httpx.Response) else answer
    )
    assert status == 413, body
    error = orjson.loads(body)["error"]
    assert error == {"type": "body_too_large", "message": "the request body is larger than 4096 bytes"}
    assert headers["connection"] == "close"  # the rest of the body is not read


# -- the pure limiters, on a clock of the test's own -----------------------------------------


def test_rate_limiter_allows_a_minutes_burst_then_refills_evenly() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert [limiter.take("a", 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a", 3) == pytest.approx(20.0)  # one request every 20 s
    assert limiter.take("b", 3) == 0.0  # each identity has its own allowance
    now[0] = 10.0
    assert limiter.take("a", 3) == pytest.approx(10.0)  # a refused request spends nothing
    now[0] = 20.0
    assert limiter.take("a", 3) == 0.0
    assert limiter.take("a", 3) > 0


def test_rate_limiter_forgets_refilled_buckets() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0], prune_above=4)
    for who in "abcd":
        limiter.take(who, 60)
    now[0] = 61.0
    limiter.take("e", 60)
    assert set(limiter._buckets) == {"e"}


def test_in_flight_slots_are_reserved_bound_and_freed_once() -> None:
    tasks = InFlight()
    first, second = tasks.reserve("a", 2), tasks.reserve("a", 2)
    assert first is not None and second is not None and tasks.reserve("a", 2) is None
    tasks.bind(first, "t1")
    tasks.release(second)  # never queued
    tasks.release(second)
    assert tasks.count("a") == 1
    tasks.finished("t1")
    tasks.finished("t1")
    assert tasks.count("a") == 0


# -- what one task may ask for -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"prompt": "x" * 51}, "prompt", "string_too_long"),  # --max-prompt-chars 50
        ({"num_images": 3}, "num_images", "less_than_equal"),  # --max-images 2
    ],
)
async def test_operator_limits_on_a_task(limited: ServerProcess, change: dict, field: str, rule: str) -> None:
    async with httpx.AsyncClient(base_url=limited.base_url) as http:
        before = await count_tasks(http)
        answer = await http.post("/v1/tasks", json={**TINY, **change})
        assert answer.status_code == 422
        assert [(f["field"], f["rule"]) for f in answer.json()["error"]["fields"]] == [(field, rule)]
        assert await count_tasks(http) == before


# -- request bodies ------------------------------------------------------------------------------


# Every POST route (server/api/routes.py and server/compat; the first test holds the route table to
# this list), as a path and a JSON body it takes; Wiro's Run also as a multipart form.
POST_DOORS: dict[str, dict[str, Any]] = {
    **BODIES,
    "/v1/tasks/0123456789abcdef/cancel": {},
    "/v2/stable-diffusion-3-medium-txt2img": {"prompt": "a"},
    "/api/generate/sd3/textToImage": BODIES["/api/generate/sdv3/textToImage"],
    # multipart doors: their size limit and hang-ups come before the body is read as a form
    "/v1/uploads": {},
    "/v1/images/edits": {},
}
WIRO_FORM = "/v1/Run/stabilityai/stable-diffusion-3-medium (multipart)"
DOORS = [*POST_DOORS, WIRO_FORM]


def _door(door: str, prompt: str) -> tuple[str, str, bytes]:
    """A request to `door` with this prompt: its path, content type and body."""
    if door == WIRO_FORM:
        form = b'--B\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n' + prompt.encode() + b"\r\n--B--\r\n"
        return door.split()[0], "multipart/form-data; boundary=B", form
    return door, "application/json", orjson.dumps({**POST_DOORS[door], "prompt": prompt})


def _framed(path: str, content_type: str, body: bytes, *, chunked: bool) -> bytes:
    """The bytes of a POST: the body with its Content-Length, or in chunks of 1000 bytes without one."""
    if chunked:
        pieces = [body[i : i + 1000] for i in range(0, len(body), 1000)]
        length, body = "Transfer-Encoding: chunked", b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    else:
        length = f"Content-Length: {len(body)}"
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n{length}\r\n\r\n".encode() + body


def test_every_post_route_is_a_door() -> None:
    socket = websocket.endpoint(websocket.MESSAGE_HANDLERS)
    every = [*api_routes(socket), *compat.routes(socket)]
    posts = [route for route in every if isinstance(route, Route) and "POST" in route.methods]
    for route in posts:
        assert any(route.path_regex.fullmatch(path) for path in POST_DOORS), f"{route.path} is not in POST_DOORS"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("door", DOORS)
async def test_a_body_over_the_limit_is_413_on_every_door_before_it_runs(
    limited: ServerProcess, door: str, chunked: bool
) -> None:
    """A declared length over the limit is refused before the body is read; a chunked body as soon
    as it passes the limit. Either way in the native shape, whichever provider's door it is."""
    request = _framed(*_door(door, OVERSIZED), chunked=chunked)
    async with httpx.AsyncClient(base_url=limited.base_url) as http:
        before = await count_tasks(http)
        _is_413(parse_response(await asyncio.to_thread(raw_exchange, limited.port, request)))
        assert await count_tasks(http) == before


@pytest.mark.parametrize("door", DOORS)
async def test_a_client_that_hangs_up_mid_body_is_one_info_line(limited: ServerProcess, door: str) -> None:
    """Content-Length 100, 10 bytes sent, connection closed: an ordinary event, not an error."""
    path, content_type, body = _door(door, "a lighthouse")
    line = f"INFO latentcast.security: POST {path}: the client hung up after 10 bytes of its body"
    async with httpx.AsyncClient(base_url=limited.base_url) as http:
        before = await count_tasks(http)
        logged_before = len(limited.log())
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: 100\r\n\r\n"
        with socket.create_connection(("127.0.0.1", limited.port)) as sock:
            sock.sendall(head.encode() + body[:10])

        async def logged() -> bool:
            return line in limited.log()[logged_before:]

        await eventually(logged, "the hang-up logged")
        assert await count_tasks(http) == before
    since = limited.log()[logged_before:]
    assert since.count(line) == 1 and "ERROR" not in since and "Traceback" not in since, since


def test_a_trickling_body_is_cut_with_408(limited: ServerProcess) -> None:
    """--min-body-rate 200 after --header-timeout 1: a byte every 0.1 s is far too slow. The whole
    body would take 100 s at this pace: the server cuts it long before, but not within its first second."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", limited.port), timeout=SAFETY_NET) as sock:
        sock.sendall(b"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        sock.settimeout(0.1)
        answer = b""
        while not answer:
            sock.send(b" ")
            try:
                answer = sock.recv(4096)
            except TimeoutError:
                pass
        sock.settimeout(SAFETY_NET)
        while rest := sock.recv(4096):  # the answer may come in pieces; the server then closes
            answer += rest
    status, headers, body = parse_response(answer)
    assert (status, headers["connection"]) == (408, "close")
    assert orjson.loads(body)["error"]["type"] == "body_timeout"
    assert time.monotonic() - started >= 1.0


# -- slow-loris: request heads -----------------------------------------------------------------


def test_headers_sent_a_byte_at_a_time_are_cut(limited: ServerProcess) -> None:
    """--header-timeout 1: the head below takes a minute at this pace; the server closes it after
    its first second, before it is complete."""
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow" + b"w" * 600 + b"\r\n\r\n"
    started = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", limited.port), timeout=SAFETY_NET) as sock:
        with pytest.raises(OSError):  # EPIPE / ECONNRESET once the server has closed
            for byte in head:
                sock.send(bytes([byte]))
                sent += 1
                time.sleep(0.1)
                sock.setblocking(False)
                try:
                    if sock.recv(1) == b"":
                        raise ConnectionResetError("closed by the server")
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
    assert sent < len(head)
    assert time.monotonic() - started >= 0.9


def test_a_connection_that_sends_nothing_is_closed(limited: ServerProcess) -> None:
    """--header-timeout 1: closed, but not within its first second."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", limited.port), timeout=SAFETY_NET) as sock:
        assert sock.recv(1) == b""
    assert time.monotonic() - started >= 0.9


async def test_normal_clients_are_not_affected(limited: ServerProcess) -> None:
    """A keep-alive client that pauses longer than --header-timeout between requests, and a
    body near the limit sent at once, are served as ever."""
    async with httpx.AsyncClient(base_url=limited.base_url) as http:
        assert (await http.get("/healthz")).status_code == 200
        await asyncio.sleep(1.5)
        assert (await http.get("/healthz")).status_code == 200
        answer = await http.post("/v1/tasks", json={**TINY, "negative_prompt": "x" * 3800})
        assert answer.status_code == 201, answer.text


# -- requests per minute and tasks in flight ---------------------------------------------------


@pytest.fixture(scope="module")
def throttled(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """No keys: each client address gets 2 tasks in flight and 12 API requests a minute."""
    server = ServerProcess(
        tmp_path_factory.mktemp("throttled"), "--workers", "0", "--max-in-flight", "2", "--rate-per-minute", "12"
    ).start()
    yield server
    server.stop()


async def test_tasks_in_flight_and_requests_per_minute_per_address(throttled: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=throttled.base_url) as http:
        first = (await http.post("/v1/tasks", json=TINY)).json()
        assert (await http.post("/v1/tasks", json=TINY)).status_code == 201
        refused = await http.post("/v1/tasks", json=TINY)
        assert (refused.status_code, refused.headers["retry-after"]) == (429, "5")
        assert refused.json()["error"]["type"] == "too_many_in_flight"
        assert "2 of your tasks are queued or running" in refused.json()["error"]["message"]
        # the providers' endpoints refuse in their own shape
        aiml = await http.post("/v1/images/generations", json=BODIES["/v1/images/generations"])
        assert (aiml.status_code, aiml.json()["statusCode"], aiml.headers["retry-after"]) == (429, 429, "5")
        wiro = await http.post("/v1/Run/stabilityai/stable-diffusion-3-medium", json=BODIES[
            "/v1/Run/stabilityai/stable-diffusion-3-medium"])
        assert wiro.json()["errors"][0]["code"] == 96
        # a task's end frees its place
        assert (await http.post(f"/v1/tasks/{first['id']}/cancel")).status_code == 202
        assert (await http.post("/v1/tasks", json=TINY)).status_code == 201
        assert await count_tasks(http) == 3  # 7 requests so far, 8 with this one
        statuses = [(await http.get("/v1/models")).status_code for _ in range(6)]
        assert 429 in statuses and statuses[0] == 200
        limited_answer = await http.get("/v1/models")
        assert limited_answer.status_code == 429 and int(limited_answer.headers["retry-after"]) >= 1
        assert limited_answer.json()["error"]["type"] == "rate_limited"
        assert "more than 12 requests a minute" in limited_answer.json()["error"]["message"]
        # pages and health checks are not API requests
        assert (await http.get("/healthz")).status_code == 200


@pytest.fixture(scope="module")
def keyed_limits(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Keys: `capped` with its own limits (3 requests a minute, 1 task in flight), `plain` with the
    operator's (30 a minute, no limit in flight)."""
    folder: Path = tmp_path_factory.mktemp("keyed-limits")
    keys = {
        "capped": create_key(folder, "capped", "--rate-per-minute", "3", "--max-in-flight", "1"),
        "plain": create_key(folder, "plain"),
    }
    server = ServerProcess(folder, "--workers", "0", "--rate-per-minute", "30").start()
    yield server, keys
    server.stop()


async def test_a_keys_own_limits_count_for_that_key_alone(keyed_limits: Any) -> None:
    server, keys = keyed_limits
    capped, plain = bearer(keys["capped"]), bearer(keys["plain"])
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        assert (await http.post("/v1/tasks", json=TINY, headers=capped)).status_code == 201
        in_flight = await http.post("/v1/tasks", json=TINY, headers=capped)
        assert (in_flight.status_code, in_flight.json()["error"]["type"]) == (429, "too_many_in_flight")
        assert (await http.get("/v1/tasks", headers=capped)).status_code == 200
        rate = await http.get("/v1/tasks", headers=capped)
        assert (rate.status_code, rate.json()["error"]["type"]) == (429, "rate_limited")
        assert "more than 3 requests a minute" in rate.json()["error"]["message"]
        for _ in range(3):  # another key: the operator's limits, untouched by capped's
            assert (await http.post("/v1/tasks", json=TINY, headers=plain)).status_code == 201


async def test_made_up_keys_count_against_the_address(keyed_limits: Any) -> None:
    server, _ = keyed_limits
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        statuses = [
            (await http.get("/v1/tasks", headers={"Authorization": f"Bearer lc_madeup{n}"})).status_code
            for n in range(31)
        ]
    assert statuses[:30] == [401] * 30 and statuses[30] == 429


# -- WebSocket -----------------------------------------------------------------------------------


async def _queued_tasks(server: ServerProcess, count: int) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        return [(await http.post("/v1/tasks", json=TINY)).json() for _ in range(count)]


async def _control(ws: Any) -> dict[str, Any]:
    """The next control message (events of the subscribed, queued tasks are skipped)."""
    while True:
        message = orjson.loads(await asyncio.wait_for(ws.recv(), SAFETY_NET))
        if "seq" not in message:
            return message


async def test_a_socket_message_over_the_limit_closes_it_with_1009(limited: ServerProcess) -> None:
    async with websockets.connect(limited.ws_url, max_size=None) as ws:
        await ws.send("x" * 250_000)  # --ws-max-message-bytes 200000
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), SAFETY_NET)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert "200000" in closed.value.rcvd.reason


async def test_subscriptions_per_socket(limited: ServerProcess) -> None:
    tasks = await _queued_tasks(limited, 4)
    async with websockets.connect(limited.ws_url) as ws:
        for task in tasks[:3]:
            await subscribe(ws, task["id"], task["token"])
            assert (await _control(ws))["type"] == "subscribed"
        await subscribe(ws, tasks[0]["id"], tasks[0]["token"])  # again: replaces, takes no more room
        assert (await _control(ws))["type"] == "subscribed"
        await subscribe(ws, tasks[3]["id"], tasks[3]["token"])
        refused = await _control(ws)
        assert (refused["type"], refused["code"], refused["id"]) == ("error", "too_many_subscriptions", tasks[3]["id"])
        assert "at most 3 tasks" in refused["message"]
        await ws.send(orjson.dumps({"type": "unsubscribe", "id": tasks[0]["id"]}).decode())
        assert (await _control(ws))["type"] == "unsubscribed"
        await subscribe(ws, tasks[3]["id"], tasks[3]["token"])
        assert (await _control(ws))["type"] == "subscribed"


async def test_a_socket_that_follows_nothing_is_closed(limited: ServerProcess) -> None:
    """--ws-idle-timeout 1.5: from the start, and from the end of its last subscription."""
    (task,) = await _queued_tasks(limited, 1)
    started = time.monotonic()
    async with websockets.connect(limited.ws_url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), SAFETY_NET)
    assert time.monotonic() - started >= 1.4
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "idle: no subscription for 1.5 s")
    async with websockets.connect(limited.ws_url) as ws:
        await subscribe(ws, task["id"], task["token"])
        assert (await _control(ws))["type"] == "subscribed"
        await asyncio.sleep(2.5)  # a live subscription (a queued task) keeps it open, pings answered
        await ws.send(orjson.dumps({"type": "unsubscribe", "id": task["id"]}).decode())
        assert (await _control(ws))["type"] == "unsubscribed"
        with pytest.raises(ConnectionClosed):
            await _control(ws)


def _ws_frame(text: bytes) -> bytes:
    """A client text frame, masked with a zero key (allowed, and leaves the payload as it is)."""
    assert len(text) < 126
    return bytes([0x81, 0x80 | len(text)]) + b"\0\0\0\0" + text


async def test_a_peer_that_stops_answering_pings_is_dropped(limited: ServerProcess) -> None:
    """--ws-ping-interval 0.5 --ws-ping-timeout 0.5; it follows a task, so it is not idle."""
    (task,) = await _queued_tasks(limited, 1)
    handshake = (
        "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    message = orjson.dumps({"type": "subscribe", "id": task["id"], "token": task["token"], "previews": "none"})
    received = b""
    with socket.create_connection(("127.0.0.1", limited.port), timeout=SAFETY_NET) as sock:
        sock.sendall(handshake.encode() + _ws_frame(message))
        while chunk := sock.recv(65536):  # the pings arrive, and go unanswered
            received += chunk
    response, _, frames = received.partition(b"\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 101 ")
    sent = _server_frames(frames)
    assert PING in [opcode for opcode, _ in sent]
    (last_opcode, last_payload) = sent[-1]
    assert last_opcode == CLOSE and int.from_bytes(last_payload[:2]) == 1011, sent  # no pong (an idle close is 1000)


PING, CLOSE = 0x9, 0x8


def _server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each unmasked, unfragmented frame a server sent, in order."""
    frames = []
    while data:
        opcode, length, start = data[0] & 0x0F, data[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(data[2:4]), 4
        elif length == 127:
            length, start = int.from_bytes(data[2:10]), 10
        frames.append((opcode, data[start : start + length]))
        data = data[start + length :]
    return frames
