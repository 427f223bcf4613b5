"""1e. Submission rate: tasks accepted per second by `POST /v1/tasks`, SQLite and Redis backends.

A real server (`latentcast serve --workers 0`: the tasks stay queued, so the worker's CPU does not
share in the measurement) takes `--tasks` submissions from client processes holding keep-alive
connections (a minimal HTTP/1.1 client on asyncio streams: an HTTP library would cost more CPU than
the server it measures). Every request must get 201. The rate is tasks over the wall time from the
first request sent to the last response read; the server's `latentcast_tasks_submitted_total` must
agree. With `--broker redis://...` the server runs on that Redis (`serve --broker`); `--redis`
starts a throwaway redis-server for the run.

    python -m bench.submit                                # SQLite (the single-process default)
    python -m bench.submit --redis                        # also on a throwaway local Redis
    python -m bench.submit --broker redis://127.0.0.1:6379/9
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import PYTHON, Report, measured_server, metric, parser, percentile, scrape
from harness.processes import ROOT, RedisServer, ServerProcess

TARGET_PER_SECOND = 1000


def server_cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def measure(server: ServerProcess, tasks: int, processes: int, connections: int) -> dict[str, Any]:
    clients = [
        await asyncio.create_subprocess_exec(
            PYTHON, "-m", "bench._submitters", "--port", str(server.port),
            "--count", str(tasks // processes + (1 if i < tasks % processes else 0)), "--connections", str(connections),
            cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**28,
        )
        for i in range(processes)
    ]
    for client in clients:
        assert client.stdout is not None
        line = (await asyncio.wait_for(client.stdout.readline(), 120)).decode()
        assert line.startswith("READY"), line
    before = await asyncio.to_thread(scrape, server.base_url)
    cpu_before = server_cpu(server.pid)
    for client in clients:
        assert client.stdin is not None
        client.stdin.write(b"GO\n")
        await client.stdin.drain()
    results = []
    for client in clients:
        assert client.stdout is not None
        line = (await asyncio.wait_for(client.stdout.readline(), 1800)).decode()
        assert line.startswith("DONE "), line
        results.append(orjson.loads(line[5:]))
        await client.wait()
    cpu = server_cpu(server.pid) - cpu_before
    after = await asyncio.to_thread(scrape, server.base_url)
    statuses: dict[str, int] = {}
    for result in results:
        for status, n in result["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    seconds = max(r["ended"] for r in results) - min(r["began"] for r in results)
    latencies = [x for r in results for x in r["latencies"]]
    return {
        "tasks": tasks, "seconds": seconds, "per_second": statuses.get("201", 0) / seconds, "statuses": statuses,
        "p50_ms": 1000 * percentile(latencies, 50), "p99_ms": 1000 * percentile(latencies, 99),
        "server_cpu_seconds": cpu,
        "server_cpu_us_per_task": 1e6 * cpu / tasks,
        "per_server_core_second": tasks / cpu if cpu else None,
        "counted_by_server": metric(after, "latentcast_tasks_submitted_total")
        - metric(before, "latentcast_tasks_submitted_total"),
        "queue_length": metric(after, "latentcast_queue_length"),
    }


def announce_placeholder(broker: str, prefix: str) -> None:
    """With Redis the API serves the models its live workers announce, and is ready only once one
    is alive. The worker must not run the tasks (its CPU would share in the measurement), so a
    placeholder heartbeat stands in for it, under a key prefix of this run's own, before the
    server starts."""
    import redis

    from latentcast.server.backends.redis_names import RedisNames
    from latentcast.server.tasks.catalog import SD3_MEDIUM_ALIASES

    beat = {"name": "bench-placeholder", "device": "none", "model": "builtin:tiny", "aliases": list(SD3_MEDIUM_ALIASES),
            "task": None, "ready": True, "started_at": time.time(), "beat_at": time.time(), "pid": 0, "host": "bench"}
    client = redis.Redis.from_url(broker)
    client.set(RedisNames(prefix).worker("bench-placeholder"), orjson.dumps(beat), ex=3600)
    client.close()


async def wait_listed(url: str) -> None:
    """Until the API's catalog (refreshed from the heartbeats) lists the placeholder's model."""
    import httpx

    async with httpx.AsyncClient(base_url=url) as http:
        for _ in range(100):
            if (await http.get("/v1/models")).json().get("data"):
                return
            await asyncio.sleep(0.1)
    raise RuntimeError("the API never listed the placeholder worker's model")


def per_core_second(run: dict[str, Any]) -> str:
    """Tasks per server CPU second; a smoke run's few tasks can take less CPU than one clock tick
    of /proc's accounting, which reads as none."""
    rate = run["per_server_core_second"]
    return "-" if rate is None else f"{rate:.0f}"


async def run(args: Any, report: Report, backends: list[tuple[str, str | None]]) -> None:
    rows = []
    for name, broker in backends:
        options = ["--workers", "0", "--max-queue", str(10 * args.tasks + 1000)]
        prefix = f"bench{secrets.token_hex(4)}"
        if broker is not None:
            options += ["--broker", broker, "--redis-prefix", prefix]
            announce_placeholder(broker, prefix)
        with measured_server(*options) as server:
            await wait_listed(server.base_url)
            await measure(server, min(200, args.tasks), args.processes, args.connections)  # warm-up
            runs = []
            for _ in range(args.repeats):
                runs.append(await measure(server, args.tasks, args.processes, args.connections))
            best = max(runs, key=lambda r: r["per_second"])
        report.data.setdefault("backends", {})[name] = {"broker": broker, "runs": runs}
        for r in runs:
            rows.append([name, r["tasks"], f"{r['seconds']:.2f}", f"{r['per_second']:.0f}",
                         f"{r['server_cpu_us_per_task']:.0f}", per_core_second(r),
                         f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", r["statuses"], int(r["counted_by_server"])])
        if not args.smoke:
            report.target(f"submissions/s ({name}, best of {len(runs)})", round(best["per_second"]), TARGET_PER_SECOND,
                          "/s", at_least=True)
    report.line()
    report.line(f"-- {args.processes} client processes x {args.connections} keep-alive connections")
    report.table(["backend", "tasks", "seconds", "tasks/s", "server CPU us/task", "tasks per server CPU s", "p50 ms", "p99 ms", "statuses", "server counted"], rows)


def main() -> None:
    parse = parser(__doc__.split("\n\n")[0])
    parse.add_argument("--tasks", type=int, default=5000)
    parse.add_argument("--repeats", type=int, default=3)
    parse.add_argument("--processes", type=int, default=2, help="client processes")
    parse.add_argument("--connections", type=int, default=16, help="keep-alive connections per client process")
    parse.add_argument("--broker", default=None, help="also measure `serve --broker URL` (Redis)")
    parse.add_argument("--redis", action="store_true", help="also measure on a throwaway local redis-server")
    parse.add_argument("--no-sqlite", action="store_true", help="only the Redis backend")
    args = parse.parse_args()
    if args.smoke:
        args.tasks, args.repeats, args.processes, args.connections = 20, 1, 1, 2
    report = Report("submit", "1e. submission rate: tasks accepted per second by POST /v1/tasks")
    backends: list[tuple[str, str | None]] = [] if args.no_sqlite else [("sqlite", None)]
    with contextlib.ExitStack() as stack:
        if args.broker:
            backends.append(("redis", args.broker))
        elif args.redis:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="latentcast-bench-redis-")))
            redis = RedisServer(folder, durable=False).start()
            stack.callback(redis.stop)
            backends.append(("redis", redis.url))
        asyncio.run(run(args, report, backends))
    report.finish(args.json)


if __name__ == "__main__":
    main()
