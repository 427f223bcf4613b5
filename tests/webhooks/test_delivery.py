"""Webhooks that arrive: `POST /v1/tasks` with `webhook`, against real receivers on loopback, on
both backends. What a receiver gets (the stream's own event, signed as Standard Webhooks says,
checked by the independent `standardwebhooks`), in seq order, and how each kind of receiver is
treated: one that answers 500 or 410, redirects, hangs, never ends its answer, or is not there yet.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import standardwebhooks

from latentcast import verify_webhook
from latentcast.server.tasks.outbox import PROGRESS_INTERVAL_SECONDS
from tests.compat.helpers import nothing_queued
from tests.core.test_openapi import described
from tests.receiver import Receiver, Reply
from tests.support import INWARD_URLS, ServerProcess, collect, free_port, server_webhook_secret
from tests.webhooks.helpers import all_ended, deliveries, deliveries_when, submit


async def test_a_task_s_end_arrives_as_the_stream_s_event_signed_and_listed(
    hooks_server: ServerProcess, hooks_client: httpx.AsyncClient, receiver: Callable[..., Receiver]
) -> None:
    client, hook = hooks_client, receiver()
    task = await submit(client, hook.url, "deliver my end")
    assert task["urls"]["deliveries"].endswith(f"/v1/tasks/{task['id']}/deliveries")
    events = await collect(hooks_server.ws_url, task["id"], task["token"], previews="none")
    [request] = await asyncio.to_thread(hook.wait_for, 1)
    end = events[-1]
    assert request["body"] == end and end["type"] == "task_postprocess_end"
    headers = request["headers"]
    assert (headers["content-type"], headers["webhook-id"]) == ("application/json", f"msg_{task['id']}_{end['seq']}")
    secret = await asyncio.to_thread(server_webhook_secret, hooks_server)
    assert standardwebhooks.Webhook(secret).verify(request["raw"], headers) == end
    assert verify_webhook(headers, request["raw"], secret) == end
    assert task["token"].encode() not in request["raw"], "a native body never carries the task's token"
    # the URL (which may hold the receiver's secret) is not shown to the task's token, at either door
    detail = await client.get(f"/v1/tasks/{task['id']}", params={"token": task["token"]})
    wiro = await client.post("/v1/Task/Detail", json={"tasktoken": task["token"]})
    assert hook.url not in detail.text and wiro.json()["tasklist"][0]["callbackurl"] == ""

    [delivery] = await all_ended(client, task, 1)
    assert delivery == {
        "id": headers["webhook-id"], "task_id": task["id"], "seq": end["seq"], "event": "task_postprocess_end",
        "state": "delivered", "attempts": 1, "last_status_code": 200, "last_error": None, "next_attempt_at": None,
        "delivered_at": delivery["delivered_at"], "failed_at": None, "created_at": end["time"],
    }
    assert delivery["delivered_at"] >= end["time"]
    doc = await described(client)
    listed = await client.get(f"/v1/tasks/{task['id']}/deliveries")
    newest = await client.get("/v1/deliveries", params={"limit": 200})
    doc.check(listed, "/v1/tasks/{task_id}/deliveries")
    doc.check(newest, "/v1/deliveries")
    assert delivery in newest.json()["data"]


async def test_the_events_asked_for_arrive_in_seq_order_progress_once_a_second_and_the_last_step(
    hooks_server: ServerProcess, hooks_client: httpx.AsyncClient, receiver: Callable[..., Receiver]
) -> None:
    client, hook = hooks_client, receiver()
    asked = ["task_queue", "task_start", "task_progress", "task_postprocess_end"]
    task = await submit(client, hook.url, "every step", webhook_events=asked, num_inference_steps=12)
    events = await collect(hooks_server.ws_url, task["id"], task["token"], previews="none")
    expected, last_progress = [], 0.0
    for event in events:
        if event["type"] == "task_progress":
            message = event["message"]
            if message["step"] != message["steps"] and event["time"] - last_progress < PROGRESS_INTERVAL_SECONDS:
                continue
            last_progress = event["time"]
        if event["type"] in asked:
            expected.append(event)
    arrived = await asyncio.to_thread(hook.wait_until, lambda got: got and got[-1]["body"]["seq"] == events[-1]["seq"],
                                      "the terminal event")
    assert [request["body"] for request in arrived] == expected
    steps = [e["message"]["step"] for e in expected if e["type"] == "task_progress"]
    assert steps[0] == 1 and steps[-1] == 12
    assert [d["seq"] for d in await all_ended(client, task, len(expected))] == [e["seq"] for e in expected]


async def test_a_500_is_retried_and_a_410_ends_the_retries(
    hooks_client: httpx.AsyncClient, receiver: Callable[..., Receiver]
) -> None:
    client, hook = hooks_client, receiver([500, 410, 200])
    task = await submit(client, hook.url, "gone")
    [delivery] = await all_ended(client, task, 1)
    assert (delivery["state"], delivery["attempts"], delivery["last_status_code"], delivery["last_error"]) == (
        "failed", 2, 410, "410 Gone: the receiver wants no more deliveries"
    )
    assert delivery["failed_at"] is not None and delivery["delivered_at"] is None
    assert [(r["status"], r["headers"]["webhook-id"]) for r in hook.requests] == [
        (500, delivery["id"]), (410, delivery["id"])
    ], "the same webhook-id on each attempt, and none after the 410"


async def test_a_redirect_is_not_followed(hooks_client: httpx.AsyncClient, receiver: Callable[..., Receiver]) -> None:
    client, elsewhere = hooks_client, receiver()
    hook = receiver([Reply(307, {"Location": elsewhere.url}), Reply(302, {"Location": elsewhere.url})])
    task = await submit(client, hook.url, "moved")
    [delivery] = await all_ended(client, task, 1)
    assert (delivery["state"], delivery["attempts"], delivery["last_status_code"]) == ("delivered", 3, 200)
    assert [r["status"] for r in hook.requests] == [307, 302, 200]
    assert elsewhere.requests == [], "the Location of a redirect gets nothing"


async def test_a_receiver_that_hangs_or_never_ends_its_answer_holds_up_no_other(
    hooks_client: httpx.AsyncClient, receiver: Callable[..., Receiver]
) -> None:
    client = hooks_client
    hanging, dripping, fine = receiver([Reply(hold=True)]), receiver([Reply(drip=True)]), receiver()
    held = await submit(client, hanging.url, "no answer")
    await asyncio.to_thread(hanging.wait_for, 1)
    dripped, answered = await submit(client, dripping.url, "endless answer"), await submit(client, fine.url, "fine")
    # delivered while the hanging receiver still holds its first request
    [one] = await all_ended(client, answered, 1)
    assert (one["state"], one["attempts"]) == ("delivered", 1)
    # the status decides: an answer whose body never ends is delivered, once
    [endless] = await all_ended(client, dripped, 1)
    assert (endless["state"], endless["attempts"], endless["last_status_code"]) == ("delivered", 1, 200)
    assert len(dripping.requests) == 1
    # no answer within --webhook-timeout (3 s): tried again with the same id, while the first still hangs
    again = await asyncio.to_thread(hanging.wait_for, 2)
    assert not hanging.released.is_set()
    assert again[0]["headers"]["webhook-id"] == again[1]["headers"]["webhook-id"]
    [late] = await all_ended(client, held, 1)
    assert (late["state"], late["attempts"]) == ("delivered", 2)


async def test_a_receiver_that_is_down_gets_every_delivery_once_it_is_back(
    hooks_client: httpx.AsyncClient, receiver: Callable[..., Receiver]
) -> None:
    client, port = hooks_client, free_port()
    url = f"http://127.0.0.1:{port}/hook"
    asked = ["task_start", "task_end", "task_postprocess_end"]
    tasks = [await submit(client, url, f"down {n}", webhook_events=asked) for n in range(2)]
    for task in tasks:
        [first, *_] = await deliveries_when(client, task, lambda found: found[0]["attempts"] >= 2, "retried")
        assert first["state"] == "pending" and "Connection refused" in first["last_error"], first
    hook = receiver(port=port)
    for task in tasks:
        sent = await all_ended(client, task, 3)
        assert [(d["event"], d["state"]) for d in sent] == [(event, "delivered") for event in asked]
        arrived = [r["body"] for r in hook.requests if r["body"]["id"] == task["id"]]
        assert [(b["seq"], b["type"]) for b in arrived] == [(d["seq"], d["event"]) for d in sent], "each once, in order"


@pytest.mark.parametrize(("url", "words"), INWARD_URLS)
async def test_a_webhook_to_an_inward_address_is_refused(client: httpx.AsyncClient, url: str, words: str) -> None:
    """A server without --webhook-allow-private would POST there from inside its own network."""
    async with nothing_queued(client):
        answer = await client.post("/v1/tasks", json={"prompt": "refused", "webhook": url})
    assert answer.status_code == 422
    [field] = answer.json()["error"]["fields"]
    assert (field["field"], field["rule"]) == ("webhook", "public_address")
    assert re.fullmatch(rf"webhook: {words}; only public addresses are allowed", field["message"])


@pytest.mark.parametrize(
    ("fields", "field", "rule", "message"),
    [
        ({"webhook_events": ["task_cancel"]}, "webhook_events", "requires_webhook",
         "webhook_events: needs a webhook to deliver them to"),
        ({"webhook": "http://127.0.0.1:9/h", "webhook_events": []}, "webhook_events", "too_short",
         "webhook_events: List should have at least 1 item after validation, not 0"),
        ({"webhook": "http://127.0.0.1:9/h", "webhook_events": ["task_done"]}, "webhook_events.0", "enum",
         "webhook_events.0: Input should be 'task_queue', 'task_accept', 'task_preprocess_start', "
         "'task_preprocess_end', 'task_assign', 'task_start', 'task_progress', 'task_output', 'task_error', "
         "'task_output_full', 'task_error_full', 'task_end', 'task_postprocess_start', 'task_postprocess_end' or "
         "'task_cancel'"),
        ({"webhook": 5}, "webhook", "string_type", "webhook: Input should be a valid string"),
        ({"webhook": "ftp://example.com/h"}, "webhook", "url", "webhook: must be an http or https URL"),
        ({"webhook": "http://no-such-host.invalid/h"}, "webhook", "resolvable_host",
         "webhook: the host no-such-host.invalid does not resolve"),
    ],
)
async def test_a_bad_webhook_field_is_refused_by_name_and_rule(
    client: httpx.AsyncClient, fields: dict[str, Any], field: str, rule: str, message: str
) -> None:
    async with nothing_queued(client):
        answer = await client.post("/v1/tasks", json={"prompt": "refused", **fields})
    assert answer.status_code == 422
    assert answer.json()["error"]["fields"] == [{"field": field, "rule": rule, "message": message}]


async def test_a_task_without_a_webhook_has_no_deliveries_and_a_stranger_sees_none(
    hooks_client: httpx.AsyncClient,
) -> None:
    task = (await hooks_client.post("/v1/tasks", json={"prompt": "no hook", "width": 64, "height": 64})).json()
    assert await deliveries(hooks_client, task) == []
    wrong = await hooks_client.get(f"/v1/tasks/{task['id']}/deliveries", params={"token": "not-its-token"})
    assert wrong.status_code == 403
