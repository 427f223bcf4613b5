"""Webhooks a crash cannot lose, on a server of the test's own (SQLite): a delivery written with its
event is sent after a kill -9 and a restart, with the same `webhook-id`; /metrics counts what came
of the attempts and the age of the oldest waiting one; and a receiver that does not answer gets
at most `--webhook-per-host` deliveries at once, while the others' go on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from tests.observability.test_metrics import scrape, value
from tests.receiver import Receiver, Reply
from tests.support import HOOK_FLAGS, ServerProcess, eventually
from tests.webhooks.helpers import all_ended, deliveries, submit


async def _pending(client: httpx.AsyncClient, count: int) -> bool:
    samples = await scrape(client)
    return value(samples, "latentcast_webhook_pending") == count and (
        value(samples, "latentcast_webhook_oldest_pending_seconds") > 0 if count else
        value(samples, "latentcast_webhook_oldest_pending_seconds") == 0
    )


async def test_a_delivery_outlives_kill_9_and_is_sent_again_with_the_same_id(
    start_server: Callable[..., ServerProcess], receiver: Callable[..., Receiver]
) -> None:
    hook = receiver([Reply(hold=True)])  # takes the first request and answers it too late
    server = start_server(*HOOK_FLAGS)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        task = await submit(client, hook.url, "outlive a crash")
        [first] = await asyncio.to_thread(hook.wait_for, 1)
        await eventually(lambda: _pending(client, 1), "one delivery pending, for a while")
    server.kill()  # SIGKILL, after the task's end was recorded and before its delivery was
    hook.release()
    restarted = start_server(*HOOK_FLAGS)
    async with httpx.AsyncClient(base_url=restarted.base_url, timeout=60) as client:
        [_, again] = await asyncio.to_thread(hook.wait_for, 2)
        same_id = f"msg_{task['id']}_{first['body']['seq']}"
        assert again["headers"]["webhook-id"] == first["headers"]["webhook-id"] == same_id
        assert again["raw"] == first["raw"] and first["body"]["type"] == "task_postprocess_end"
        [delivery] = await all_ended(client, task, 1)
        assert (delivery["state"], delivery["attempts"]) == ("delivered", 1), "the killed attempt left no record"
        await eventually(lambda: _pending(client, 0), "nothing pending")

        gone = receiver([500, 410])
        await all_ended(client, await submit(client, gone.url, "counted"), 1)
        samples = await scrape(client)
        outcomes = ("delivered", "retried", "given_up")
        counted = {o: value(samples, "latentcast_webhook_deliveries_total", outcome=o) for o in outcomes}
        assert counted == {"delivered": 1, "retried": 1, "given_up": 1}
    assert "Traceback" not in restarted.log(), restarted.log()[-3000:]


async def test_a_receiver_that_does_not_answer_gets_at_most_per_host_deliveries_at_once(
    start_server: Callable[..., ServerProcess], receiver: Callable[..., Receiver]
) -> None:
    server = start_server(*HOOK_FLAGS, "--webhook-timeout", "120", "--webhook-per-host", "2")
    silent, fine = receiver([Reply(hold=True)] * 3), receiver()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        held = [await submit(client, silent.url, f"held {n}") for n in range(3)]
        await asyncio.to_thread(silent.wait_for, 2)
        # the third task's end is recorded before this one's, whose delivery then goes out at once
        answered = await submit(client, fine.url, "answered")
        [one] = await all_ended(client, answered, 1)
        assert one["state"] == "delivered"
        [waiting] = await deliveries(client, held[2])  # (written: its task ended before the answered one)
        assert len(silent.requests) == 2 and (waiting["state"], waiting["attempts"]) == ("pending", 0)
        silent.release()
        for task in held:
            [done] = await all_ended(client, task, 1)
            assert (done["state"], done["attempts"]) == ("delivered", 1)
        assert len(silent.requests) == 3
