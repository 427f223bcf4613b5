"""A task whose worker dies mid-run: the same events on one process and on Redis (docs/protocol.md).

One process: `serve` is killed with -9 and started again; it re-queues the task. Redis: a worker
is killed with -9; another reclaims the task after the visibility timeout. A client must not be
able to tell which happened: `task_error interrupted`, `task_queue`, then `task_accept` attempt 2.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import ServerProcess, collect, seqs, types, wait_status

TASK = {"prompt": "interrupted", "width": 256, "height": 256, "num_inference_steps": 40}
STEPS = {"task_progress", "task_output"}  # as many as the run got through before it was killed


def lifecycle(events: list[dict[str, Any]]) -> list[str]:
    return [t for t in types(events) if t not in STEPS]


async def _interrupted_alone(server: ServerProcess) -> list[dict[str, Any]]:
    server.wait_ready()
    try:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            task = (await client.post("/v1/tasks", json=TASK)).json()
            await wait_status(client, task["id"], {"running"})
        server.kill()
        server.start()
        return await collect(server.ws_url, task["id"], task["token"], previews="none", timeout=180)
    finally:
        server.stop()


async def _interrupted_on_redis(cluster) -> list[dict[str, Any]]:
    front = cluster.frontend()
    cluster.worker("w1"), cluster.worker("w2")
    cluster.wait_workers({"w1", "w2"})
    async with httpx.AsyncClient(base_url=front.base_url) as client:
        task = (await client.post("/v1/tasks", json=TASK)).json()
        cluster.workers[(await wait_status(client, task["id"], {"running"}))["worker"]].kill()
    return await collect(front.ws_url, task["id"], task["token"], previews="none", timeout=180)


async def test_a_reclaimed_task_has_the_same_events_in_both_modes(cluster, tmp_path):
    single = ServerProcess(tmp_path / "single", "--preview-min-interval", "0").start(wait=False)  # starts meanwhile
    on_redis = await _interrupted_on_redis(cluster)
    alone = await _interrupted_alone(single)
    assert lifecycle(alone) == lifecycle(on_redis)
    for events in (alone, on_redis):
        assert seqs(events) == list(range(1, len(events) + 1))
        again = types(events).index("task_error")
        error, queue, accept = events[again : again + 3]
        assert [error["type"], queue["type"], accept["type"]] == ["task_error", "task_queue", "task_accept"]
        assert error["message"]["code"] == "interrupted" and "fatal" not in error["message"]
        assert error["message"]["message"].endswith("; queued again")
        assert set(queue["message"]) == {"position", "queue_length"} and queue["message"]["position"] == 1
        assert accept["message"]["attempt"] == 2
