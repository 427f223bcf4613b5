"""1f. Memory: the server's resident memory before and after 1,000 finished tasks.

A real server (`latentcast serve`, its defaults, one worker) runs small tasks (64 px, 4 steps, a
preview every step) submitted in batches, while one `subscribe_all` WebSocket (a dashboard) reads
every event. RSS is read with psutil after a warm-up of 50 tasks (first-use allocations: the
previewer, the allocator's arenas, SQLite's page cache) and then every 250 finished tasks. Nothing a
finished task leaves behind may stay in memory: the single-process backend keeps finished tasks on
disk (SQLite), and the only per-task state in memory (the store's cache of unfinished records, the
metrics observer's) is dropped at the terminal event, so RSS must stay flat; with Redis, finished
tasks expire after `--retention`.

    python -m bench.memory
    python -m bench.memory --tasks 3000 --every 500
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
import orjson
import websockets

from bench.common import Report, is_terminal, measured_server, metric, parser, rss_bytes, scrape

BODY = {"prompt": "a lighthouse at dusk", "width": 64, "height": 64, "num_inference_steps": 4}
TARGET_GROWTH_MIB = 16.0


class Dashboard:
    """A `subscribe_all` socket that counts terminal events."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.finished = 0
        self.events = 0
        self.changed = asyncio.Event()

    async def run(self, ready: asyncio.Event) -> None:
        async with websockets.connect(self.url, max_size=None) as ws:
            await ws.send(orjson.dumps({"type": "subscribe_all", "previews": "none"}).decode())
            ready.set()
            async for frame in ws:
                event = orjson.loads(frame)
                if "seq" not in event:
                    continue
                self.events += 1
                if is_terminal(event):
                    self.finished += 1
                    self.changed.set()

    async def wait(self, finished: int, timeout: float = 1800) -> None:
        async with asyncio.timeout(timeout):
            while self.finished < finished:
                self.changed.clear()
                await self.changed.wait()


async def run_tasks(http: httpx.AsyncClient, dashboard: Dashboard, count: int, batch: int) -> None:
    goal = dashboard.finished + count
    sent = 0
    while sent < count:
        n = min(batch, count - sent)
        responses = await asyncio.gather(*(http.post("/v1/tasks", json=BODY) for _ in range(n)))
        assert all(r.status_code == 201 for r in responses), [r.text for r in responses if r.status_code != 201][:1]
        sent += n
        await dashboard.wait(goal - count + sent)
    await dashboard.wait(goal)


async def run(args: Any, report: Report) -> None:
    rows, checkpoints = [], []
    with measured_server(*args.server_args) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as http:
            dashboard = Dashboard(server.ws_url)
            ready = asyncio.Event()
            reader = asyncio.create_task(dashboard.run(ready))
            await ready.wait()
            began = time.monotonic()
            await run_tasks(http, dashboard, args.warmup, args.batch)
            await asyncio.sleep(1)
            base = rss_bytes(server.pid)
            checkpoints.append({"finished": 0, "rss": base, "seconds": time.monotonic() - began})
            rows.append([0, f"{base / 2**20:.1f}", "+0.0", "-"])
            done = 0
            while done < args.tasks:
                n = min(args.every, args.tasks - done)
                await run_tasks(http, dashboard, n, args.batch)
                done += n
                await asyncio.sleep(1)
                rss = rss_bytes(server.pid)
                checkpoints.append({"finished": done, "rss": rss, "seconds": time.monotonic() - began})
                rows.append([done, f"{rss / 2**20:.1f}", f"{(rss - base) / 2**20:+.1f}", f"{(rss - base) / done / 1024:+.2f}"])
            samples = await asyncio.to_thread(scrape, server.base_url)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
    unfinished = sum(
        metric(samples, "latentcast_tasks", status=s) for s in ("queued", "accepted", "preprocessing", "running", "postprocessing")
    )
    growth = (checkpoints[-1]["rss"] - base) / 2**20
    report.table(["tasks finished after warm-up", "RSS MiB", "growth MiB", "KiB per task"], rows)
    report.line(
        f"   {args.warmup} warm-up + {args.tasks} tasks, {dashboard.events} events read by the dashboard socket; "
        f"server counted {metric(samples, 'latentcast_tasks_finished_total', status='completed'):.0f} completed, "
        f"{unfinished:.0f} unfinished"
    )
    report.data.update({"warmup": args.warmup, "tasks": args.tasks, "checkpoints": checkpoints, "growth_mib": growth,
                        "events_read": dashboard.events, "unfinished_after": unfinished})
    if not args.smoke:
        report.target(f"RSS growth over {args.tasks} finished tasks", round(growth, 1), TARGET_GROWTH_MIB, " MiB")


def main() -> None:
    parse = parser(__doc__.split("\n\n")[0])
    parse.add_argument("--tasks", type=int, default=1000)
    parse.add_argument("--every", type=int, default=250, help="tasks between RSS readings")
    parse.add_argument("--warmup", type=int, default=50)
    parse.add_argument("--batch", type=int, default=50, help="tasks submitted at once")
    parse.add_argument("--server-args", nargs="*", default=[], help="extra `latentcast serve` options")
    args = parse.parse_args()
    if args.smoke:
        args.tasks, args.every, args.warmup, args.batch = 2, 1, 1, 1
    report = Report("memory", "1f. server memory before and after many finished tasks")
    asyncio.run(run(args, report))
    report.finish(args.json)


if __name__ == "__main__":
    main()
