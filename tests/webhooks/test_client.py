"""Asking for a webhook from the Python client (`submit(..., webhook=..., webhook_events=[...])`,
both flavours) and from the command line (`latentcast generate --webhook URL`), and reading how
its deliveries went (`Task.deliveries()`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from latentcast import AsyncClient, Client, Delivery
from tests.client.test_cli import latentcast
from tests.receiver import Receiver
from tests.support import ServerProcess, eventually

ASKED = ("task_start", "task_postprocess_end")


async def test_the_async_and_the_sync_client_ask_for_a_webhook_and_read_its_deliveries(
    hooks_server: ServerProcess, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver()
    async with AsyncClient(hooks_server.base_url) as client:
        task = await client.submit("hooked", width=64, height=64, num_inference_steps=2, webhook=hook.url,
                                   webhook_events=ASKED)
        await task.result()
        found: list[Delivery] = []

        async def delivered() -> bool:
            found[:] = await task.deliveries()
            return [d.state for d in found] == ["delivered", "delivered"]

        await eventually(delivered, "both events delivered")
    assert [(d.event, d.attempts, d.last_status_code) for d in found] == [(e, 1, 200) for e in ASKED]
    assert [r["body"]["type"] for r in hook.requests] == list(ASKED)
    assert found[0].id == hook.requests[0]["headers"]["webhook-id"] and found[0].seq < found[1].seq

    def sync() -> list[Delivery]:
        with Client(hooks_server.base_url) as client:
            task = client.submit("hooked sync", width=64, height=64, num_inference_steps=2, webhook=hook.url)
            task.result()
            return task.deliveries()

    assert [d.event for d in await asyncio.to_thread(sync)] == ["task_postprocess_end"]


def test_generate_asks_for_a_webhook(
    hooks_server: ServerProcess, receiver: Callable[..., Receiver], tmp_path: Path
) -> None:
    hook = receiver()
    done = latentcast(
        "generate", "hooked from the shell", "--size", "64x64", "--steps", "2", "-o", "out.png", "-q",
        "--webhook", hook.url, "--webhook-event", "task_start", "--webhook-event", "task_postprocess_end",
        "--server", hooks_server.base_url, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    arrived = hook.wait_for(2)
    assert [r["body"]["type"] for r in arrived] == list(ASKED)
    assert arrived[1]["body"]["message"][0]["name"] == "0.png"
