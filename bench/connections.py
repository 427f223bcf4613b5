"""1d. Connections: how many idle WebSocket subscribers one server process holds, and what each costs.

A real server (`latentcast serve --workers 0`, so the task they follow stays queued and the sockets
stay idle) is measured with psutil: its resident memory after a few warm-up sockets, then with N
sockets open, each subscribed to that task, spread over client processes of 1,000 sockets. The
server's own `latentcast_subscribers` gauge must count them all, and `/healthz` must still answer
quickly while it holds them. The open-file limit is raised in this process, so the server and the
clients inherit it.

    python -m bench.connections
    python -m bench.connections --counts 1000 5000 10000
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx

from bench.common import PYTHON, Report, measured_server, metric, parser, raise_fd_limit, rss_bytes, scrape
from harness.processes import ROOT, ServerProcess

PER_PROCESS = 1000
TARGET_SOCKETS, TARGET_BYTES = 5000, 2**30


async def open_sockets(server: ServerProcess, task: dict[str, Any], count: int) -> list[asyncio.subprocess.Process]:
    processes = []
    for start in range(0, count, PER_PROCESS):
        processes.append(
            await asyncio.create_subprocess_exec(
                PYTHON, "-m", "bench._subscribers", "--url", server.ws_url, "--task", task["id"],
                f"--token={task['token']}", "--count", str(min(PER_PROCESS, count - start)), "--previews", "none", "--idle",
                cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**28,
            )
        )
    for process in processes:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 600)).decode()
        if not line.startswith("READY"):
            raise RuntimeError(f"a client process failed to open its sockets: {line!r} (exit {await process.wait()})")
    return processes


async def close_sockets(processes: list[asyncio.subprocess.Process]) -> None:
    for process in processes:
        assert process.stdin is not None
        process.stdin.close()
    for process in processes:
        await asyncio.wait_for(process.wait(), 120)


async def healthz_ms(http: httpx.AsyncClient, tries: int = 20) -> float:
    times = []
    for _ in range(tries):
        began = time.perf_counter()
        (await http.get("/healthz")).raise_for_status()
        times.append(time.perf_counter() - began)
    return 1000 * statistics.median(times)


async def settle_rss(pid: int, seconds: float = 1.0) -> int:
    await asyncio.sleep(seconds)
    return rss_bytes(pid)


async def run(args: Any, report: Report) -> None:
    limit = raise_fd_limit(max(args.counts) * 2 + 2048)
    report.line(f"   open-file limit: {limit}")
    rows, results = [], []
    with measured_server("--workers", "0", "--max-queue", "100000") as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
            task = (await http.post("/v1/tasks", json={"prompt": "idle", "width": 64, "height": 64})).json()
            warm = await open_sockets(server, task, 20)
            await close_sockets(warm)
            for count in args.counts:
                base = await settle_rss(server.pid)
                base_health = await healthz_ms(http)
                began = time.monotonic()
                processes = await open_sockets(server, task, count)
                opened = time.monotonic() - began
                held = await settle_rss(server.pid, 2.0)
                gauge = metric(await asyncio.to_thread(scrape, server.base_url), "latentcast_subscribers", transport="websocket")
                health = await healthz_ms(http)
                await close_sockets(processes)
                await asyncio.sleep(2.0)
                after = rss_bytes(server.pid)
                gauge_after = metric(await asyncio.to_thread(scrape, server.base_url), "latentcast_subscribers", transport="websocket")
                extra = held - base
                result = {
                    "sockets": count, "rss_before": base, "rss_holding": held, "rss_after_close": after,
                    "extra_bytes": extra, "bytes_per_socket": extra / count, "open_seconds": opened,
                    "gauge_holding": gauge, "gauge_after_close": gauge_after,
                    "healthz_ms_idle": base_health, "healthz_ms_holding": health,
                }
                results.append(result)
                rows.append([count, f"{base / 2**20:.0f}", f"{held / 2**20:.0f}", f"{extra / 2**20:.0f}",
                             f"{extra / count / 1024:.1f}", f"{opened:.1f}", int(gauge), f"{health:.2f}",
                             f"{after / 2**20:.0f}", int(gauge_after)])
    report.table(
        ["sockets", "RSS before MiB", "holding MiB", "extra MiB", "KiB/socket", "open s", "gauge", "healthz ms",
         "after close MiB", "gauge after"],
        rows,
    )
    report.data["runs"] = results
    if not args.smoke:
        for r in results:
            if r["sockets"] == TARGET_SOCKETS:
                report.target("sockets held (gauge)", int(r["gauge_holding"]), TARGET_SOCKETS, at_least=True)
                report.target(f"extra memory for {TARGET_SOCKETS} sockets", round(r["extra_bytes"] / 2**20, 1),
                              TARGET_BYTES / 2**20, " MiB")


def main() -> None:
    parse = parser(__doc__.split("\n\n")[0])
    parse.add_argument("--counts", type=int, nargs="+", default=[1000, 5000])
    args = parse.parse_args()
    if args.smoke:
        args.counts = [20]
    report = Report("connections", "1d. idle WebSocket subscribers held by one server process")
    asyncio.run(run(args, report))
    report.finish(args.json)


if __name__ == "__main__":
    main()
