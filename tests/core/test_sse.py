"""`GET /v1/tasks/{id}/events` read by httpx-sse, as a Python user of Server-Sent Events reads it."""

from __future__ import annotations

import orjson
from httpx_sse import aconnect_sse

from tests.support import SMALL, collect


async def test_an_sse_client_reads_every_event_from_the_first_and_resumes_with_last_event_id(server, client):
    answer = await client.post("/v1/tasks", json={"prompt": "a lighthouse at dusk", **SMALL})
    task = answer.json()
    over_the_socket = await collect(server.ws_url, task["id"], task["token"], previews="none")

    async def read(headers: dict[str, str]) -> list:
        url = f"/v1/tasks/{task['id']}/events"
        params = {"previews": "none", "token": task["token"]}
        async with aconnect_sse(client, "GET", url, params=params, headers=headers) as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            return [sse async for sse in source.aiter_sse()]

    stream = await read({})
    # every block is an event whose data is the JSON envelope, the very first one included
    assert [orjson.loads(sse.data) for sse in stream] == over_the_socket
    assert [(sse.event, sse.id) for sse in stream] == [(e["type"], str(e["seq"])) for e in over_the_socket]
    # the reconnection delay rides on the first event, once
    assert [sse.retry for sse in stream] == [1000] + [None] * (len(stream) - 1)

    resumed = await read({"Last-Event-ID": "12"})
    assert [orjson.loads(sse.data) for sse in resumed] == over_the_socket[12:]
    assert resumed[0].retry == 1000
