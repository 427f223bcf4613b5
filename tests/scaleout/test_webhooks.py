"""Webhooks across front-ends on Redis: every front-end sends deliveries, each claimed by one at a
time, and a front-end killed mid-delivery loses none: another takes its claims over when they lapse."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import psutil

from tests.receiver import Receiver, Reply
from tests.scaleout.cluster import Cluster
from tests.support import HOOK_FLAGS, ServerProcess, free_port, wait_status
from tests.webhooks.helpers import all_ended, submit

TASKS = 4


def _ports(frontend: ServerProcess, hook: Receiver) -> set[int]:
    """The local ports of `frontend`'s open connections to the receiver (it is mid-delivery on each)."""
    connections = psutil.Process(frontend.pid).net_connections("tcp")
    return {c.laddr.port for c in connections if c.raddr and c.raddr.port == hook.port}


async def test_a_front_end_killed_mid_delivery_loses_no_delivery(
    cluster: Cluster, receiver: Callable[..., Receiver]
) -> None:
    frontends = [cluster.frontend(*HOOK_FLAGS, "--webhook-timeout", "5") for _ in range(2)]
    cluster.worker("w1")
    cluster.wait_workers({"w1"})
    port = free_port()  # the receiver is not there yet: every delivery waits, retried
    async with httpx.AsyncClient(base_url=frontends[0].base_url, timeout=30) as client:
        tasks = [await submit(client, f"http://127.0.0.1:{port}/hook", f"handed over {n}") for n in range(TASKS)]
        for task in tasks:
            await wait_status(client, task["id"], {"completed"}, timeout=120)
    hook = receiver([Reply(hold=True)] * TASKS, port=port)  # takes each first request, answers it too late
    held = await asyncio.to_thread(hook.wait_for, TASKS)
    first = {r["headers"]["webhook-id"]: r for r in held}
    assert len(first) == TASKS and {r["body"]["id"] for r in held} == {t["id"] for t in tasks}, "one claim each"
    victim = max(frontends, key=lambda frontend: len(_ports(frontend, hook)))
    dropped = {r["headers"]["webhook-id"] for r in held if r["client"][1] in _ports(victim, hook)}
    assert dropped, "the victim is mid-delivery"
    survivor = frontends[1 - frontends.index(victim)]
    victim.kill()
    hook.release()
    async with httpx.AsyncClient(base_url=survivor.base_url, timeout=30) as client:
        for task in tasks:
            [delivery] = await all_ended(client, task, 1)
            assert delivery["state"] == "delivered", delivery
    again = hook.requests[TASKS:]
    assert dropped <= {r["headers"]["webhook-id"] for r in again}, "the survivor sent what the victim held"
    assert {r["headers"]["webhook-id"] for r in hook.requests} == set(first), "no id lost, none made up"
    assert all(r["raw"] == first[r["headers"]["webhook-id"]]["raw"] for r in again), "sent again as it was"
