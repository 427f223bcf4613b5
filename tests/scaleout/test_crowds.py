"""Crowds at once on Redis front-ends whose pools are small: a thousand subscribers of one task over
two front-ends each get every event, five hundred submits are each accepted or refused by the
queue limit, and no process ever holds more Redis connections than its pool (redis-server's own
CLIENT LIST says so)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import httpx
import orjson
import pytest

from harness.processes import ROOT, ConnectionPeaks
from tests.scaleout.cluster import Cluster
from tests.support import wait_status

POOL = 8  # connections per process: a thousand subscribers share them
MAX_QUEUE = 300
SUBSCRIBERS_EACH = 500
# Holds the worker while the subscribers connect: only a cancel ends it while a test looks at it.
GATE = {"prompt": "gate", "width": 1024, "height": 1024, "num_inference_steps": 100, "preview_method": "none"}
WATCHED = {"prompt": "watched", "width": 64, "height": 64, "num_inference_steps": 4}  # a preview every step
BURST = {"prompt": "burst", "width": 64, "height": 64, "num_inference_steps": 1, "preview_method": "none"}


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("crowds"))
    try:
        # Waits for a connection are this module's subject, not their limit (test_redis_pool's): on a
        # loaded 2-core machine 500 submits over 8 connections can wait longer than the default 10 s.
        pool = ["--redis-pool-size", str(POOL), "--redis-pool-timeout", "600"]
        running.frontend(*pool, "--max-queue", str(MAX_QUEUE))
        running.frontend(*pool)
        running.worker("w1", *pool)
        running.wait_workers({"w1"})
        yield running
    finally:
        running.stop()


async def _line(process: asyncio.subprocess.Process, prefix: str, timeout: float = 240) -> str:
    assert process.stdout is not None
    while True:
        raw = await asyncio.wait_for(process.stdout.readline(), timeout)
        assert raw, f"the subscriber client exited ({await process.wait()}) before {prefix}"
        if raw.startswith(prefix.encode()):
            return raw.decode()[len(prefix) :].strip()


async def test_a_thousand_subscribers_over_two_front_ends_each_get_every_event(crowded):
    a, b = crowded.frontends
    async with httpx.AsyncClient(base_url=a.base_url, timeout=60) as http:
        gate = (await http.post("/v1/tasks", json=GATE)).json()
        await wait_status(http, gate["id"], {"running"})
        task = (await http.post("/v1/tasks", json=WATCHED)).json()
        with ConnectionPeaks(crowded.redis) as peaks:
            clients = [
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench._subscribers", "--url", front.ws_url, "--task", task["id"],
                    f"--token={task['token']}", "--count", str(SUBSCRIBERS_EACH), "--batch", str(SUBSCRIBERS_EACH),
                    cwd=ROOT, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, limit=2**28,
                )
                for front in (a, b)
            ]
            assert [await _line(client, "READY") for client in clients] == [str(SUBSCRIBERS_EACH)] * 2
            # every one subscribed while the task waited: each reads its log, then follows it live
            assert (await http.get(f"/v1/tasks/{task['id']}")).json()["status"] == "queued"
            assert (await http.post(f"/v1/tasks/{gate['id']}/cancel")).status_code == 202
            results = [orjson.loads(await _line(client, "DONE")) for client in clients]
            for client in clients:
                await client.wait()
        detail = await wait_status(http, task["id"], {"completed"})
    last = detail["last_seq"]
    for result in results:
        sockets = result["sockets"]
        assert len(sockets) == SUBSCRIBERS_EACH
        short = [s for s in sockets if (s["first"], s["last"], s["events"], s["gapless"], s["terminal"], s["error"]) != (1, last, last, True, True, None)]
        assert short == []
        assert all(s["previews"] >= 1 for s in sockets)  # binary previews reached every one
    for front in (a, b):
        assert 0 < peaks.of(front.pid) <= POOL, peaks.by_name
    assert peaks.total <= POOL * 3, peaks.by_name  # two front-ends and the worker


async def test_five_hundred_submits_at_once_are_each_accepted_or_refused_by_the_queue_limit(crowded):
    front = crowded.frontends[0]
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=500)
    async with httpx.AsyncClient(base_url=front.base_url, timeout=120, limits=limits) as http:
        with ConnectionPeaks(crowded.redis) as peaks:
            answers = await asyncio.gather(*(http.post("/v1/tasks", json=BURST) for _ in range(500)))
    accepted = [r.json()["id"] for r in answers if r.status_code == 201]
    refused = [r for r in answers if r.status_code != 201]
    # A submit is refused only once MAX_QUEUE were accepted before it, however many ran at once.
    assert len(accepted) >= MAX_QUEUE and len(set(accepted)) == len(accepted)
    assert {(r.status_code, r.json()["error"]["type"]) for r in refused} <= {(429, "queue_full")}
    assert 0 < peaks.of(front.pid) <= POOL, peaks.by_name
