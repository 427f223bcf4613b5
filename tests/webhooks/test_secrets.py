"""Whose secret signs a webhook: the server's for a task made without a key, the key's own for a
task made with one (shown once by `latentcast keys create`); and rotation, during which the old
secret still signs beside the new one. Every signature is checked by `standardwebhooks`."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import standardwebhooks

from tests.receiver import Receiver
from tests.support import HOOK_FLAGS, ServerProcess, eventually, server_webhook_secret
from tests.webhooks.helpers import submit


def keys(server: ServerProcess, *args: str) -> str:
    """`latentcast keys ...` on the server's store, as its operator runs it; what it prints."""
    done = subprocess.run(
        [sys.executable, "-m", "latentcast", "keys", *args, "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, check=True, timeout=120,
    )
    return done.stdout


def rotated(printed: str) -> str:
    found = re.search(r"New webhook secret of .+?: (whsec_\S+)", printed)
    assert found, printed
    return found.group(1)


async def delivered(client: httpx.AsyncClient, hook: Receiver, prompt: str) -> dict[str, Any]:
    """The request that delivers the end of a new task."""
    task = await submit(client, hook.url, prompt)
    return await asyncio.to_thread(
        lambda: next(r for r in hook.wait_until(lambda got: any(r["body"]["id"] == task["id"] for r in got), prompt)
                     if r["body"]["id"] == task["id"])
    )


def verifies(secret: str, request: dict[str, Any]) -> bool:
    try:
        standardwebhooks.Webhook(secret).verify(request["raw"], request["headers"])
    except standardwebhooks.WebhookVerificationError:
        return False
    return True


async def test_the_server_s_secret_signs_keyless_tasks_and_a_key_s_own_signs_its_tasks(
    start_server: Callable[..., ServerProcess], receiver: Callable[..., Receiver]
) -> None:
    server, hook = start_server(*HOOK_FLAGS), receiver()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        first = await asyncio.to_thread(server_webhook_secret, server)
        assert first == await asyncio.to_thread(server_webhook_secret, server), "made once, then the same"
        request = await delivered(client, hook, "no key")
        assert verifies(first, request) and request["headers"]["webhook-signature"].count("v1,") == 1

        second = rotated(await asyncio.to_thread(keys, server, "rotate-webhook-secret", "--server", "--grace", "3600"))
        assert second == await asyncio.to_thread(server_webhook_secret, server)
        request = await delivered(client, hook, "server rotated")
        assert verifies(first, request) and verifies(second, request), "the old one signs beside the new one"

    made = orjson.loads(await asyncio.to_thread(keys, server, "create", "--name", "hooks", "--json"))
    assert made["webhook_secret"].startswith("whsec_")
    # The server reads whether keys exist at most CACHE_SECONDS late (server/security/keyring.py):
    # until it enforces them, a task sent with the new key is anyone's, signed with the server's secret.
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as anonymous:
        async def enforced() -> bool:
            return (await anonymous.get("/v1/tasks")).status_code == 401

        await eventually(enforced, "the server enforcing its first key")
    headers = {"Authorization": f"Bearer {made['key']}"}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60, headers=headers) as client:
        request = await delivered(client, hook, "with a key")
        assert verifies(made["webhook_secret"], request)
        assert not verifies(first, request) and not verifies(second, request), "not the server's"
        assert made["key"].encode() not in request["raw"] and made["secret"].encode() not in request["raw"]

        kept = rotated(await asyncio.to_thread(keys, server, "rotate-webhook-secret", made["id"], "--grace", "3600"))
        request = await delivered(client, hook, "key rotated")
        assert verifies(made["webhook_secret"], request) and verifies(kept, request)
        newest = rotated(await asyncio.to_thread(keys, server, "rotate-webhook-secret", made["id"], "--grace", "0"))
        request = await delivered(client, hook, "rotated at once")
        assert verifies(newest, request) and not verifies(kept, request), "no grace: the old one stops at once"


@pytest.mark.parametrize("args", [("key_nothere",), ()], ids=["unknown key", "neither key nor --server"])
def test_rotating_needs_a_known_key_or_the_server(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "latentcast", "keys", "rotate-webhook-secret", *args, "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == (1 if args else 2)
    expected = "no key 'key_nothere' (see `latentcast keys list`)" if args else "one of the arguments key_id --server"
    assert expected in done.stderr
