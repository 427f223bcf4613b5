"""API keys across front-ends on one Redis: what one front-end saw, the others know."""

from __future__ import annotations

import asyncio
import time

import httpx

from latentcast.server.security.wiro_signature import wiro_signature
from tests.scaleout.cluster import Cluster
from tests.security.helpers import bearer, create_key, revoke_key, sse_until_revoked
from tests.support import eventually

# Runs far longer than a revocation takes to be seen (about a second).
LONG = {"prompt": "long", "width": 1024, "height": 1024, "num_inference_steps": 100}


async def test_a_nonce_works_once_across_frontends_and_revocation_closes_sse_on_the_other(cluster: Cluster) -> None:
    a, b = cluster.frontend(), cluster.frontend()
    cluster.worker("w1")
    cluster.wait_workers({"w1"})  # before any key exists: /v1/workers then needs one
    keys_at = cluster.root / "cli"
    key = create_key(keys_at, "shared", broker=cluster.redis.url)
    async with httpx.AsyncClient(base_url=a.base_url, timeout=60) as on_a, httpx.AsyncClient(base_url=b.base_url, timeout=60) as on_b:
        async def accepted_everywhere() -> bool:
            statuses = {(await on.get("/v1/tasks", headers=bearer(key))).status_code for on in (on_a, on_b)}
            return statuses == {200}

        await eventually(accepted_everywhere, "the new key accepted by both front-ends")

        # Wiro's signed request, captured and replayed to the other front-end
        nonce = str(time.time_ns())
        signed = {"x-api-key": key["key"], "x-nonce": nonce, "x-signature": wiro_signature(key["key"], key["secret"], nonce)}
        assert (await on_a.get("/v1/tasks", headers=signed)).status_code == 200
        replayed = await on_b.get("/v1/tasks", headers=signed)
        assert replayed.status_code == 401
        assert replayed.json()["error"] == {
            "type": "unauthorized", "message": "this x-nonce was already used in the last 300 seconds"
        }

        # an SSE stream on B, its key revoked through the CLI and seen by A first
        task = (await on_a.post("/v1/tasks", json=LONG, headers=bearer(key))).json()

        def revoke() -> None:
            revoke_key(keys_at, key["id"], broker=cluster.redis.url)

            def refused() -> bool:
                return httpx.get(f"{a.base_url}/v1/tasks", headers=bearer(key)).status_code == 401

            asyncio.run(eventually(refused, "A refuses the revoked key"))  # (revoke runs in a thread of its own)

        events = await sse_until_revoked(b.base_url, task["id"], key, revoke)
        assert events and not any(e["type"] in ("task_postprocess_end", "task_cancel") for e in events)
        # it ended for the key, not for the task: the task runs on, its token still reads it
        detail = await on_b.get(f"/v1/tasks/{task['id']}", params={"token": task["token"]})
        assert detail.json()["status"] not in ("completed", "cancelled", "failed")
