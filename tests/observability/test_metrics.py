"""`GET /metrics`: Prometheus text that parses, and counters that move with a task."""

from __future__ import annotations

import httpx
import orjson
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.support import SMALL, collect, decode_frame, eventually, is_terminal

UNFINISHED = ("queued", "accepted", "preprocessing", "running", "postprocessing")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def submit(client: httpx.AsyncClient, **params) -> dict:
    response = await client.post("/v1/tasks", json={"prompt": "a lighthouse at dusk", **SMALL, **params})
    assert response.status_code == 201, response.text
    return response.json()


async def settle(client: httpx.AsyncClient, check, timeout: float = 60) -> Samples:
    """Scrape until `check(samples)` holds (the server notices a closed socket a moment later)."""

    async def settled() -> Samples | None:
        samples = await scrape(client)
        return samples if check(samples) else None

    return await eventually(settled, "the metrics settle", timeout)


async def test_metrics_parse_and_name_every_family(client):
    samples = await scrape(client)
    names = {name for name, _ in samples}
    for family in (
        "latentcast_queue_length",
        "latentcast_tasks",
        "latentcast_tasks_finished_total",
        "latentcast_tasks_submitted_total",
        "latentcast_step_duration_seconds_count",
        "latentcast_preview_duration_seconds_count",
        "latentcast_subscribers",
        "latentcast_events_sent_total",
        "latentcast_previews_dropped_total",
        "latentcast_worker_heartbeats_total",
        "latentcast_worker_last_heartbeat_timestamp_seconds",
        "latentcast_workers_live",
        "latentcast_worker_ready",
        "latentcast_webhook_deliveries_total",
        "latentcast_webhook_pending",
        "latentcast_webhook_oldest_pending_seconds",
        "process_resident_memory_bytes",
    ):
        assert family in names, family
    for status in UNFINISHED:
        assert ("latentcast_tasks", (("status", status),)) in samples
    assert value(samples, "latentcast_workers_live") >= 1
    assert all(v == 1 for (name, _), v in samples.items() if name == "latentcast_worker_ready")


async def test_counters_move_with_a_task(server, client):
    before = await scrape(client)
    task = await submit(client, num_inference_steps=4, preview_every=1)
    events = await collect(server.ws_url, task["id"], task["token"], previews="binary")
    assert events[-1]["type"] == "task_postprocess_end"
    after = await settle(
        client, lambda s: value(s, "latentcast_subscribers", transport="websocket")
        == value(before, "latentcast_subscribers", transport="websocket")
    )

    assert moved(before, after, "latentcast_tasks_submitted_total") == 1
    assert moved(before, after, "latentcast_tasks_finished_total", status="completed") == 1
    assert moved(before, after, "latentcast_events_total", type="task_progress") == 4
    assert moved(before, after, "latentcast_events_total", type="task_postprocess_end") == 1
    assert sum(moved(before, after, "latentcast_events_total", type=t) for t in {e["type"] for e in events}) == len(events)
    # four steps: three intervals between step callbacks; the shared server previews every step
    assert moved(before, after, "latentcast_step_duration_seconds_count") == 3
    assert moved(before, after, "latentcast_step_duration_seconds_sum") > 0
    assert moved(before, after, "latentcast_preview_duration_seconds_count", method="latent2rgb") == 4
    assert moved(before, after, "latentcast_task_queue_wait_seconds_count") == 1
    assert moved(before, after, "latentcast_task_run_seconds_count", status="completed") == 1
    # the socket got every event plus its `subscribed` reply
    assert moved(before, after, "latentcast_events_sent_total", transport="websocket") == len(events) + 1
    # nothing left in flight, the socket is gone
    for status in UNFINISHED:
        assert value(after, "latentcast_tasks", status=status) == 0, status
    assert value(after, "latentcast_queue_length") == 0
    assert value(after, "latentcast_subscribers", transport="websocket") == value(
        before, "latentcast_subscribers", transport="websocket"
    )
    worker = events[1]["message"]["worker"]
    assert moved(before, after, "latentcast_worker_events_total", worker=worker) >= len(events) - 1
    assert value(after, "latentcast_worker_last_event_timestamp_seconds", worker=worker) >= events[-1]["time"]


async def test_subscribers_gauge_counts_open_sockets_and_sse_streams(server, client):
    task = await submit(client, num_inference_steps=30, width=128, height=128)
    before = await scrape(client)
    # unbounded client queues: sockets this test never reads must not stall, or closing them waits
    async with websockets.connect(server.ws_url, max_queue=None) as one, websockets.connect(
        server.ws_url, max_queue=None
    ) as two:
        for ws in (one, two):
            await ws.send(orjson.dumps({"type": "subscribe", "id": task["id"], "token": task["token"]}).decode())
            assert decode_frame(await ws.recv())["type"] == "subscribed"
        during = await scrape(client)
        assert moved(before, during, "latentcast_subscribers", transport="websocket") == 2
        async with client.stream("GET", f"/v1/tasks/{task['id']}/events", params={"previews": "none"}) as stream:
            lines = stream.aiter_lines()
            async for line in lines:
                if line.startswith("data:"):
                    break
            with_sse = await scrape(client)
            assert moved(before, with_sse, "latentcast_subscribers", transport="sse") == 1
            async for line in lines:
                if line.startswith("data:") and is_terminal(orjson.loads(line[5:])):
                    break
    after = await settle(
        client,
        lambda s: value(s, "latentcast_subscribers", transport="websocket")
        == value(before, "latentcast_subscribers", transport="websocket")
        and value(s, "latentcast_subscribers", transport="sse") == value(before, "latentcast_subscribers", transport="sse"),
    )
    assert moved(before, after, "latentcast_subscribers", transport="websocket") == 0
    assert moved(before, after, "latentcast_subscribers", transport="sse") == 0
    assert moved(before, after, "latentcast_events_sent_total", transport="sse") >= 30


async def test_queue_length_and_statuses_while_tasks_wait(server, client):
    first = await submit(client, num_inference_steps=60, width=256, height=256, preview_method="none")
    waiting = [await submit(client) for _ in range(2)]
    samples = await scrape(client)
    assert value(samples, "latentcast_queue_length") >= 2
    assert value(samples, "latentcast_tasks", status="queued") >= 2
    for task in (*reversed(waiting), first):
        await client.post(f"/v1/tasks/{task['id']}/cancel")
    after = await settle(client, lambda s: all(value(s, "latentcast_tasks", status=status) == 0 for status in UNFINISHED))
    assert value(after, "latentcast_queue_length") == 0
    assert moved(samples, after, "latentcast_tasks_finished_total", status="cancelled") == 3
