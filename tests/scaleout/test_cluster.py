"""Many front-ends, many workers, one Redis: the same API, the same events, no lost task."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import httpx
import pytest
import redis.asyncio as aioredis

from tests.scaleout.cluster import Cluster
from tests.support import collect, eventually, previewed_steps, seqs, types, wait_status


def without_pictures(events: list[dict]) -> list[dict]:
    """Events without their preview pictures: flow control may replace an unsent one with a newer."""
    plain = []
    for event in events:
        event = {key: value for key, value in event.items() if key != "_image"}
        if event["type"] == "task_progress":
            event["message"] = {key: value for key, value in event["message"].items() if key != "preview"}
        plain.append(event)
    return plain


LONG = {"prompt": "long", "width": 256, "height": 256, "num_inference_steps": 100}
# Long enough (a sixth of a second a step at 1024 px) that only a cancel ends it while a test looks at it.
ENDLESS = {"prompt": "endless", "width": 1024, "height": 1024, "num_inference_steps": 100}
SHORT = {"prompt": "short", "width": 64, "height": 64, "num_inference_steps": 6}
WORKERS = {"w1", "w2", "w3"}


@pytest.fixture(scope="module")
def _module_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        running.frontend("--max-steps", "500")
        running.frontend()
        for name in sorted(WORKERS):
            running.worker(name)
        yield running
    finally:
        running.stop()


@pytest.fixture
def shared(_module_cluster: Cluster) -> Cluster:
    """Two front-ends and three workers, shared by the tests that leave them as they found them, or
    kill a worker: it is started again, under its name, before the next test. (A cluster costs a
    few CPU-seconds a process to start; the tests that need fewer workers, or restart Redis, have
    their own.)"""
    for name, worker in list(_module_cluster.workers.items()):
        if worker.process is not None and worker.process.poll() is not None:
            _module_cluster.worker(name)
    _module_cluster.wait_workers(WORKERS)
    return _module_cluster


async def test_two_frontends_three_workers_same_events_everywhere(shared):
    a, b = shared.frontends
    async with httpx.AsyncClient(base_url=a.base_url) as client:
        workers = (await client.get("/v1/workers")).json()["data"]
        assert [w["name"] for w in workers] == ["w1", "w2", "w3"]
        tasks = [(await client.post("/v1/tasks", json={**SHORT, "num_inference_steps": 30, "seed": i})).json() for i in range(4)]
    # live on A and, at the same time, on B
    on_a = [asyncio.create_task(collect(a.ws_url, t["id"], t["token"], previews="binary")) for t in tasks]
    on_b = [asyncio.create_task(collect(b.ws_url, t["id"], t["token"], previews="binary")) for t in tasks]
    live_a, live_b = await asyncio.gather(*on_a), await asyncio.gather(*on_b)
    for events_a, events_b in zip(live_a, live_b):
        assert seqs(events_a) == list(range(1, len(events_a) + 1))
        # the same events; which previews' pictures each socket got depends on when it could send
        assert without_pictures(events_a) == without_pictures(events_b)
        pictures = [e["_image"] for e in events_a + events_b if "_image" in e]
        assert pictures and all(p.startswith(b"\xff\xd8") for p in pictures)  # JPEG
        assert types(events_a)[-1] == "task_postprocess_end"
    ran_on = {next(e["message"]["worker"] for e in events if e["type"] == "task_accept") for events in live_a}
    assert ran_on <= {"w1", "w2", "w3"} and len(ran_on) >= 2
    # after the end, on B: the whole log again
    replay = await collect(b.ws_url, tasks[0]["id"], tasks[0]["token"], previews="none")
    assert seqs(replay) == seqs(live_a[0])
    async with httpx.AsyncClient(base_url=b.base_url) as client:
        detail = (await client.get(f"/v1/tasks/{tasks[0]['id']}")).json()
        assert detail["status"] == "completed"
        image = await client.get(f"/v1/files/{tasks[0]['id']}/0.png")
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
        assert detail["outputs"][0]["size"] == len(image.content)


async def test_kill_9_worker_mid_task_and_another_finishes_it(shared):
    front = shared.frontends[0]
    async with httpx.AsyncClient(base_url=front.base_url) as client:
        task = (await client.post("/v1/tasks", json=LONG)).json()
        detail = await wait_status(client, task["id"], {"running"})
        victim = detail["worker"]
        shared.workers[victim].kill()
        events = await collect(front.ws_url, task["id"], task["token"], previews="none", timeout=120)
    assert seqs(events) == list(range(1, len(events) + 1))
    assert types(events)[-1] == "task_postprocess_end"
    accepts = [e["message"] for e in events if e["type"] == "task_accept"]
    survivor = accepts[-1]["worker"]
    assert survivor in WORKERS - {victim}
    assert accepts == [{"worker": victim, "attempt": 1}, {"worker": survivor, "attempt": 2}]
    error = next(e for e in events if e["type"] == "task_error")
    assert error["message"]["code"] == "interrupted" and victim in error["message"]["message"]


async def test_paused_worker_wakes_up_and_cannot_write(shared):
    front = shared.frontends[0]
    async with httpx.AsyncClient(base_url=front.base_url) as client:
        task = (await client.post("/v1/tasks", json=LONG)).json()
        detail = await wait_status(client, task["id"], {"running"})
        paused = shared.workers[detail["worker"]]
        paused.send_signal(signal.SIGSTOP)
        try:
            done = await wait_status(client, task["id"], {"completed"}, timeout=120)
        finally:
            paused.send_signal(signal.SIGCONT)

        async def woken_worker_let_go() -> bool:
            # Its heartbeat names no task once it has tried to go on writing, been refused, and
            # dropped the task: its writes, if any got through, are in the log read below.
            beats = (await client.get("/v1/workers")).json()["data"]
            return any(beat["name"] == detail["worker"] and beat["task"] is None for beat in beats)

        await eventually(woken_worker_let_go, "the woken worker drops the task taken over from it")
        events = await collect(front.ws_url, task["id"], task["token"], previews="none")
        assert seqs(events) == list(range(1, len(events) + 1))
        assert types(events).count("task_postprocess_end") == 1 and types(events)[-1] == "task_postprocess_end"
        assert [e["message"]["attempt"] for e in events if e["type"] == "task_accept"] == [1, 2]
        assert (await client.get(f"/v1/tasks/{task['id']}")).json()["last_seq"] == done["last_seq"] == events[-1]["seq"]
        # the woken worker is healthy and takes new work
        again = (await client.post("/v1/tasks", json=SHORT)).json()
        assert types(await collect(front.ws_url, again["id"], again["token"]))[-1] == "task_postprocess_end"


async def test_cancel_queued_and_running_from_another_frontend(cluster):
    a, b = cluster.frontend(), cluster.frontend()
    cluster.worker("w1")
    cluster.wait_workers({"w1"})
    async with httpx.AsyncClient(base_url=a.base_url) as on_a, httpx.AsyncClient(base_url=b.base_url) as on_b:
        running = (await on_a.post("/v1/tasks", json=ENDLESS)).json()
        # Queued only once the first task left the queue, so `queued` is first in line from its
        # first task_queue on and has no position change to announce.
        await wait_status(on_a, running["id"], {"running"})
        queued = (await on_a.post("/v1/tasks", json=SHORT)).json()
        last = (await on_a.post("/v1/tasks", json=SHORT)).json()
        assert (await on_b.post(f"/v1/tasks/{queued['id']}/cancel")).status_code == 202
        # the position changes reach a subscriber on the other front-end (live, or replayed from the log)
        events_last = asyncio.create_task(collect(b.ws_url, last["id"], last["token"], previews="none", timeout=120))
        assert (await on_b.post(f"/v1/tasks/{running['id']}/cancel")).status_code == 202
        cancelled = await collect(a.ws_url, running["id"], running["token"], previews="none")
        assert types(cancelled)[-1] == "task_cancel" and "task_end" not in types(cancelled)
        never = await collect(a.ws_url, queued["id"], queued["token"], previews="none")
        assert types(never) == ["task_queue", "task_cancel"]
        finished = await events_last
        positions = [e["message"]["position"] for e in finished if e["type"] == "task_queue"]
        # it moved up each time a task ahead of it left, wherever that happened
        assert positions[-1] == 1 and positions == sorted(positions, reverse=True) and len(positions) >= 2
        assert types(finished)[-1] == "task_postprocess_end"


async def test_unknown_model_is_refused_with_the_served_ones(cluster):
    front = cluster.frontend()
    async with httpx.AsyncClient(base_url=front.base_url) as client:
        nobody = await client.post("/v1/tasks", json=SHORT)  # no worker alive yet: a passing state
        assert nobody.status_code == 503 and nobody.headers["retry-after"] == "2"
        assert nobody.json()["error"]["type"] == "no_worker"
        assert "no live worker serves any model now" in nobody.json()["error"]["message"]
        cluster.worker("w1")
        cluster.wait_workers({"w1"})
        other = await client.post("/v1/tasks", json={**SHORT, "model": "sd3-large"})
        assert other.status_code == 400
        assert "served models: builtin:tiny" in other.json()["error"]["message"]


async def test_a_task_submitted_the_moment_readyz_turns_200_is_queued(cluster):
    """/readyz and submission read the same heartbeats: the first 200 is never followed by a 400,
    neither when the first worker comes nor when a killed one is replaced."""
    front = cluster.frontend()
    async with httpx.AsyncClient(base_url=front.base_url, timeout=30) as client:
        for name in ("w1", "w2"):
            worker = cluster.worker(name)
            while (await client.get("/readyz")).status_code != 200:
                await asyncio.sleep(0.01)
            queued = await client.post("/v1/tasks", json=SHORT)
            assert queued.status_code == 201, queued.text
            await wait_status(client, queued.json()["id"], {"completed"})
            worker.kill()
            while (await client.get("/readyz")).status_code == 200:  # its heartbeat expires
                await asyncio.sleep(0.05)


async def test_redis_restart_with_aof_keeps_queued_tasks(cluster):
    front = cluster.frontend()
    worker = cluster.worker("w1")
    cluster.wait_workers({"w1"})
    async with httpx.AsyncClient(base_url=front.base_url) as client:
        # Three tasks wait behind a long one that holds the only worker, which then dies: they are
        # queued, and nobody but Redis's append-only file keeps them.
        blocker = (await client.post("/v1/tasks", json=ENDLESS)).json()
        await wait_status(client, blocker["id"], {"running"})
        tasks = [(await client.post("/v1/tasks", json=SHORT)).json() for _ in range(3)]
        assert [t["status"] for t in tasks] == ["queued"] * 3, tasks
        worker.kill()
        assert (await client.post(f"/v1/tasks/{blocker['id']}/cancel")).status_code == 202
        cluster.redis.stop()
        cluster.redis.start()
        cluster.worker("w2")
        for task in tasks:
            events = await collect(front.ws_url, task["id"], task["token"], previews="none", timeout=120)
            assert types(events)[0] == "task_queue" and types(events)[-1] == "task_postprocess_end"
            assert seqs(events) == list(range(1, len(events) + 1))


async def test_a_500_step_task_keeps_its_event_stream_small(shared):
    front = shared.frontends[0]  # the one started with --max-steps 500
    async with httpx.AsyncClient(base_url=front.base_url) as client:
        task = (await client.post("/v1/tasks", json={**SHORT, "num_inference_steps": 500, "width": 64, "height": 64})).json()
        events = await collect(front.ws_url, task["id"], task["token"], previews="binary", timeout=240)
    assert all("_image" in e for e in previewed_steps(events, 500))
    previews = [e for e in events if "_image" in e]
    redis = aioredis.Redis.from_url(shared.redis.url)
    try:
        stream = f"lc:events:{task['id']}"
        entries = await redis.xrange(stream)
        assert len(entries) == len(events) == events[-1]["seq"]
        # every step's preview went out live, but the log keeps none of them, only small JSON
        assert not [fields for _, fields in entries if b"data" in fields or b"preview" in fields[b"message"]]
        assert await redis.memory_usage(stream) / len(entries) < 300
        newest = await redis.hgetall(f"lc:preview:{task['id']}")  # the newest preview, aside
        assert int(newest[b"seq"]) == previews[-1]["seq"] and newest[b"data"] == previews[-1]["_image"]
        assert await redis.ttl(stream) > 0  # finished: it expires after the retention
    finally:
        await redis.aclose()
