"""Redis goes away and comes back: workers resume, requests get 503 meanwhile, nothing is lost or doubled.

Real redis-server processes stopped cleanly and with kill -9, real front-ends and workers. Every
wait is for a condition, with a generous deadline: the machine may be loaded.
"""

from __future__ import annotations

import asyncio
import functools
import re
import signal
import time
from collections import Counter
from collections.abc import Awaitable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import websockets

from tests.scaleout.outage import KILLS, follow_sse, start_answering
from tests.support import (
    HOOK_FLAGS,
    ServerProcess,
    collect,
    decode_frame,
    eventually,
    free_port,
    is_terminal,
    seqs,
    subscribe,
    types,
    wait_status,
)
from tests.webhooks.helpers import all_ended, deliveries_when, submit

SLOW = {"prompt": "busy through the outage", "width": 256, "height": 256, "num_inference_steps": 60}
QUICK = {"prompt": "after the outage", "width": 64, "height": 64, "num_inference_steps": 4}
# Far longer than the outage: a busy worker keeps its task, so what is seen is a resume, not a takeover.
PATIENT = ("--visibility-timeout", "30")
NEVER_RETRIEVED = "Task exception was never retrieved"


def assert_ran_once(events: list[dict[str, Any]]) -> None:
    assert seqs(events) == list(range(1, len(events) + 1)), "seq must count 1, 2, 3, ... with no gap"
    assert [is_terminal(e) for e in events].count(True) == 1, "exactly one terminal event"
    assert types(events)[-1] == "task_postprocess_end", types(events)[-3:]


@pytest.mark.parametrize("kill", KILLS.values(), ids=KILLS.keys())
async def test_redis_restart_busy_and_idle_workers_resume(cluster, kill):
    a, b = cluster.frontend(*PATIENT), cluster.frontend(*PATIENT)
    workers = {name: cluster.worker(name, *PATIENT) for name in ("w1", "w2")}
    cluster.wait_workers(set(workers))
    async with httpx.AsyncClient(base_url=a.base_url, timeout=30) as client:

        async def beating_since(moment: float) -> bool:
            # a heartbeat key from before the outage survives in the AOF: only fresh beats count
            answer = await client.get("/v1/workers")
            fresh = {w["name"] for w in answer.json()["data"] if w["beat_at"] > moment}
            return answer.status_code == 200 and fresh == set(workers)

        async def taken(task_id: str) -> bool:
            return (await client.get(f"/v1/tasks/{task_id}")).json()["status"] != "queued"

        busy = (await client.post("/v1/tasks", json=SLOW)).json()
        await wait_status(client, busy["id"], {"running"})  # one worker busy, the other idle
        on_b = asyncio.create_task(follow_sse(b.base_url, busy["id"], busy["token"]))
        cluster.redis.stop(kill)

        task_url = f"/v1/tasks/{busy['id']}"
        during = {
            "submit": await client.post("/v1/tasks", json=QUICK),
            "detail": await client.get(task_url),
            "cancel": await client.post(f"{task_url}/cancel"),
            "sse": await client.get(f"{task_url}/events", params={"token": busy["token"]}),
        }
        for what, answer in during.items():
            assert answer.status_code == 503, f"{what} during the outage: {answer.status_code} {answer.text}"
            assert answer.headers["retry-after"] == "2", what
            assert answer.json()["error"]["type"] == "unavailable", what
        await _socket_refused(a.ws_url, busy)
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["store"] == "unreachable", ready.text

        await asyncio.to_thread(start_answering, cluster.redis)
        back = time.time()
        first = await client.get(task_url)
        assert first.status_code == 200, f"the first request after Redis returned: {first.text}"
        # job reads resumed: the idle worker takes new tasks while the busy one finishes
        quick = [(await client.post("/v1/tasks", json=QUICK)).json() for _ in range(3)]
        await eventually(lambda: taken(quick[0]["id"]), "a new task taken by the idle worker")
        read = time.time() - back
        await eventually(lambda: beating_since(back), "both workers' heartbeats back")
        beats = time.time() - back
        await eventually(lambda: _status(client.get("/readyz"), 200), "/readyz ready again")
        print(f"\n{kill!r} after Redis answered: a new task taken in {read:.2f}s, every heartbeat back in {beats:.2f}s")
        for task in [busy, *quick]:
            events = await collect(a.ws_url, task["id"], task["token"], previews="none", timeout=180)
            assert_ran_once(events)
            assert types(events).count("task_accept") == 1, "resumed, not taken over"
            if task is busy:
                busy_events = events
    # a client following docs/protocol.md over SSE on the other front-end missed nothing
    sse_events, reconnects = await on_b
    assert seqs(sse_events) == seqs(busy_events), f"SSE on front-end B after {reconnects} reconnects"
    for name, worker in workers.items():
        assert worker.stop() == 0, f"worker {name} did not stop on SIGTERM:\n{worker.log()[-2000:]}"
        assert NEVER_RETRIEVED not in worker.log(), worker.log()[-3000:]


# Backoff's two lines (server/tasks/outage.py), by the loop that logs them
LOST = re.compile(r" WARNING latentcast\.[\w.]+: (.+): backend unreachable \(")
BACK = re.compile(r" WARNING latentcast\.[\w.]+: (.+): backend reachable again after ")
# Long enough for every loop to retry many times (each backs off to 1 s between tries).
OUTAGE_SECONDS = 5


def _outage_lines(process: ServerProcess) -> tuple[Counter[str], Counter[str]]:
    """How often each loop of the process logged an outage's beginning, and its end."""
    log = process.log()
    return Counter(LOST.findall(log)), Counter(BACK.findall(log))


async def test_each_loop_logs_an_outage_once_when_it_begins_and_once_when_it_ends(cluster, receiver):
    front, worker = cluster.frontend(*HOOK_FLAGS), cluster.worker("w1")
    cluster.wait_workers({"w1"})
    # the loops that read Redis all the time, so see any outage; others may see it too
    always = {
        front: {"feed reader", "cancel listener", "model catalog", "webhook deliveries"},
        worker: {"cancel listener", "worker w1"},
    }

    async def lost_by(process: ServerProcess, loops: set[str]) -> bool:
        return loops <= set(_outage_lines(process)[0])

    # a webhook delivery retried across the outage: its receiver comes up while Redis is down
    port = free_port()
    async with httpx.AsyncClient(base_url=front.base_url, timeout=30) as client:
        hooked = await submit(client, f"http://127.0.0.1:{port}/hook", "delivered after the outage")
        await deliveries_when(client, hooked, lambda found: found[0]["attempts"] >= 1, "retried")
    cluster.redis.stop()
    hook = receiver(port=port)
    await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait for something to happen
    for process, loops in always.items():
        await eventually(functools.partial(lost_by, process, loops), f"{loops} lost Redis")
    await asyncio.to_thread(start_answering, cluster.redis)
    # The worker's job loop is back once it takes a job: give it one.
    await asyncio.to_thread(cluster.wait_workers, {"w1"})
    async with httpx.AsyncClient(base_url=front.base_url, timeout=30) as client:
        assert (await client.post("/v1/tasks", json=QUICK)).status_code == 201
        [delivery] = await all_ended(client, hooked, 1)
    assert delivery["state"] == "delivered" and [r["body"]["id"] for r in hook.requests] == [hooked["id"]]

    async def all_back(process: ServerProcess) -> bool:
        lost, back = _outage_lines(process)
        return set(back) == set(lost)

    for process in always:
        await eventually(functools.partial(all_back, process), "every loop that lost Redis logs its return")
    for process, loops in always.items():
        lost, back = _outage_lines(process)
        assert loops <= set(lost)
        assert lost == back == Counter(dict.fromkeys(lost, 1)), process.log()[-5000:]
        assert "lost Redis" not in process.log() and "Traceback" not in process.log(), process.log()[-5000:]


async def test_sigterm_during_an_outage_leaves_the_task_to_another_worker(cluster):
    front = cluster.frontend()
    for name in ("w1", "w2"):
        cluster.worker(name, "--shutdown-grace", "1")
    cluster.wait_workers({"w1", "w2"})
    async with httpx.AsyncClient(base_url=front.base_url, timeout=30) as client:
        task = (await client.post("/v1/tasks", json={**SLOW, "num_inference_steps": 100})).json()
        victim = (await wait_status(client, task["id"], {"running"}))["worker"]
        cluster.redis.stop(signal.SIGKILL)
        began = time.monotonic()
        assert cluster.workers[victim].stop(signal.SIGTERM, timeout=60) == 0
        # 1 s of grace to finish, 5 s to hand the task back, then it leaves (plus the process's exit)
        assert time.monotonic() - began < 15, "a worker must obey SIGTERM while Redis is down"
        assert NEVER_RETRIEVED not in cluster.workers[victim].log()
        await asyncio.to_thread(start_answering, cluster.redis)
        events = await collect(front.ws_url, task["id"], task["token"], previews="none", timeout=180)
    assert_ran_once(events)
    survivor = ({"w1", "w2"} - {victim}).pop()
    accepts = [e["message"] for e in events if e["type"] == "task_accept"]
    assert accepts == [{"worker": victim, "attempt": 1}, {"worker": survivor, "attempt": 2}]


# Few steps, large enough that decoding the picture takes seconds: a worker paused at its last step
# is decoding, with nothing left to write. When it wakes, it finishes the decode and stores its
# outputs with no write refused yet (the old bug: the device thread stored them itself) unless
# the files go through the fence as the events do.
SENTINEL = "lc:file:sentinel"
TAKEN_OVER = "was taken over; this worker stops writing to it"
LATE = {"prompt": "paused late", "width": 640, "height": 640, "num_inference_steps": 2}


async def _pause_near_the_end(cluster, ws_url: str, task: dict[str, Any]) -> tuple[ServerProcess, int]:
    """SIGSTOP the task's worker once its last step is recorded; that worker, and how many refused
    writes it had logged before."""
    async def before_the_end() -> tuple[ServerProcess, int]:
        async with websockets.connect(ws_url, max_size=None) as ws:
            await subscribe(ws, task["id"], task["token"], previews="none")
            worker = None
            while True:
                event = decode_frame(await ws.recv())
                if event["type"] == "task_accept":
                    worker = cluster.workers[event["message"]["worker"]]
                if event["type"] == "task_progress" and event["message"]["step"] == LATE["num_inference_steps"]:
                    assert worker is not None
                    worker.send_signal(signal.SIGSTOP)
                    return worker, worker.log().count(TAKEN_OVER)

    return await asyncio.wait_for(before_the_end(), 180)


async def test_a_paused_worker_stores_no_file_after_losing_its_task(cluster):
    front = cluster.frontend()
    cluster.worker("w1"), cluster.worker("w2")
    cluster.wait_workers({"w1", "w2"})
    redis = aioredis.Redis.from_url(cluster.redis.url)
    await redis.config_set("notify-keyspace-events", "K$")  # every SET of a string key, as it happens
    sets: list[str] = []
    pubsub = redis.pubsub()
    await pubsub.psubscribe("__keyspace@0__:lc:file:*")

    async def record_sets() -> None:
        async for message in pubsub.listen():
            if message["type"] == "pmessage" and message["data"] == b"set":
                sets.append(message["channel"].decode().removeprefix("__keyspace@0__:"))

    recorder = asyncio.create_task(record_sets())
    try:
        async with httpx.AsyncClient(base_url=front.base_url, timeout=30) as client:
            # 1. taken over and completed by the other worker: the woken one overwrites nothing
            done = (await client.post("/v1/tasks", json=LATE)).json()
            paused, refusals = await _pause_near_the_end(cluster, front.ws_url, done)
            try:
                detail = await wait_status(client, done["id"], {"completed"}, timeout=180)
            finally:
                paused.send_signal(signal.SIGCONT)
            await _refused(paused, refusals)
            key = f"lc:file:{done['id']}:0.png"
            await _settled(redis, sets)
            assert sets == [key], "one SET of the output, the new owner's"
            download = await client.get(f"/v1/files/{done['id']}/0.png")
            assert download.status_code == 200 and download.content.startswith(b"\x89PNG")
            assert len(download.content) == detail["outputs"][0]["size"]
            assert download.content == await redis.get(key)

            # 2. taken over and cancelled: the woken worker leaves no orphan file behind
            cancelled = (await client.post("/v1/tasks", json=LATE)).json()
            paused, refusals = await _pause_near_the_end(cluster, front.ws_url, cancelled)
            try:
                await eventually(lambda: _attempt(client, cancelled["id"], 2), "the task taken over", timeout=180)
                assert (await client.post(f"/v1/tasks/{cancelled['id']}/cancel")).status_code == 202
                await wait_status(client, cancelled["id"], {"cancelled"}, timeout=120)
            finally:
                paused.send_signal(signal.SIGCONT)
            await _refused(paused, refusals)
            await _settled(redis, sets)
            assert [k async for k in redis.scan_iter(match=f"lc:file*:{cancelled['id']}*")] == []
            assert sets == [key], "nothing stored for the cancelled task"
    finally:
        recorder.cancel()
        await pubsub.aclose()
        await redis.aclose()


async def _socket_refused(ws_url: str, task: dict[str, Any]) -> None:
    """A socket during the outage: its handshake gets the 503 (when it checks a key in Redis), or
    its subscribe closes it with 1013, to reconnect and resubscribe with `since`."""
    try:
        async with websockets.connect(ws_url) as ws:
            await subscribe(ws, task["id"], task["token"], previews="none")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 30)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    except websockets.InvalidStatus as refused:
        assert refused.response.status_code == 503 and refused.response.headers["retry-after"] == "2"


async def _refused(worker: ServerProcess, before: int) -> None:
    """Until the woken worker has logged one more refused write: it went on, and was stopped."""
    await eventually(lambda: (worker.log().count(TAKEN_OVER) > before), "the woken worker's write refused")


async def _settled(redis: aioredis.Redis, sets: list[str]) -> None:
    """Until every SET made so far has been seen: Redis notifies in the order it executes, so once
    the notice of a SET made now arrives, the woken worker's earlier ones (if any) are in `sets`."""
    await redis.set(SENTINEL, b"")
    await eventually(lambda: (SENTINEL in sets), "the sentinel's notice")
    sets.remove(SENTINEL)


async def _attempt(client: httpx.AsyncClient, task_id: str, attempt: int) -> bool:
    return (await client.get(f"/v1/tasks/{task_id}")).json()["attempt"] >= attempt



async def _status(answer: Awaitable[httpx.Response], status: int) -> bool:
    return (await answer).status_code == status
