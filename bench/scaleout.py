"""1h. Scale-out: subscribers and submissions arriving at once at Redis front-ends.

One redis-server, two API front-ends (`serve --broker ... --workers 0`), one `latentcast worker`.

Subscribers: for each count N, one measured task (256 px, 28 steps, a preview after every step)
waits behind a gate task while N WebSocket subscribers, half on each front-end, connect at once
(one client process per front-end, bench._subscribers, all its sockets together); then the gate is
cancelled and the task runs. Counted: the subscribers that got every event, seq 1 to the terminal
one without a gap, and those refused at the handshake or closed, with why.

Submissions: N `POST /v1/tasks` at once to one front-end (bench._submitters, one connection each,
a 64 px task of one step), counted by status.

Throughout, redis-server's own `CLIENT LIST` is read every few milliseconds: the most connections
each front-end held at once (by the name each process gives its connections), and in all; and
how many replay reads (XRANGE of a task's events) the subscribers cost, from `INFO commandstats`.

    python -m bench.scaleout
    python -m bench.scaleout --counts 300 600 1000 --submits 300 500
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import PYTHON, Report, parser, raise_fd_limit, reported
from harness.processes import READY_TIMEOUT, ROOT, ConnectionPeaks, RedisServer, ServerProcess

MEASURED = {"prompt": "measured", "width": 256, "height": 256, "num_inference_steps": 28}
GATE = {"prompt": "gate", "width": 1024, "height": 1024, "num_inference_steps": 100, "preview_method": "none"}
SUBMITTED = '{"prompt": "burst", "width": 64, "height": 64, "num_inference_steps": 1, "preview_method": "none"}'
FAST = ["--preview-min-interval", "0", "--heartbeat", "0.5"]


def xrange_calls(redis: RedisServer) -> int:
    """Reads of task logs so far: redis-server's own count of XRANGE calls (`INFO commandstats`)."""
    import redis as redis_py

    with redis_py.Redis(port=redis.port) as client:
        return int(client.info("commandstats").get("cmdstat_xrange", {}).get("calls", 0))


def named(peaks: ConnectionPeaks, process: ServerProcess) -> int | None:
    """The peak of `process`'s connections; None where none carried its name (a version of the
    server that names none)."""
    return peaks.of(process.pid) or None


@contextlib.contextmanager
def cluster(folder: Path, extra: list[str]) -> Iterator[tuple[RedisServer, list[ServerProcess]]]:
    redis = RedisServer(folder / "redis", durable=False).start()
    fronts = [
        ServerProcess(folder / f"front-{i}", "--broker", redis.url, "--workers", "0", "--max-queue", "100000", *FAST, *extra)
        for i in range(2)
    ]
    worker = ServerProcess(
        folder / "worker", "--broker", redis.url, "--name", "w1", *FAST, *extra, command="worker"
    )
    try:
        for process in (*fronts, worker):
            process.start(wait=False)
        for front in fronts:
            front.wait_ready(READY_TIMEOUT)  # ready: its Redis answers and a worker is live
            while not httpx.get(f"{front.base_url}/v1/models").json()["data"]:  # its catalog lags the worker's heartbeat
                time.sleep(0.1)
        yield redis, fronts
    finally:
        for process in (*fronts, worker):
            process.kill()
        redis.stop()


async def finished(http: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    while (detail := (await http.get(f"/v1/tasks/{task_id}")).json())["status"] not in ("completed", "failed", "cancelled"):
        await asyncio.sleep(0.05)
    return detail


def why(error: str) -> str:
    """A subscriber's error, its handshake's answer shortened to the status code."""
    return re.sub(r"b'HTTP/1\.1 (\d+)[^']*'", r"\1", error)


async def subscribers(redis: RedisServer, fronts: list[ServerProcess], count: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=fronts[0].base_url, timeout=120) as http:
        gate = (await http.post("/v1/tasks", json=GATE)).json()
        while (await http.get(f"/v1/tasks/{gate['id']}")).json()["status"] != "running":
            await asyncio.sleep(0.05)
        task = (await http.post("/v1/tasks", json=MEASURED)).json()
        shares = [count // 2 + count % 2, count // 2]
        reads_before = xrange_calls(redis)
        with ConnectionPeaks(redis) as peaks:
            clients = [
                await asyncio.create_subprocess_exec(
                    PYTHON, "-m", "bench._subscribers", "--url", front.ws_url, "--task", task["id"],
                    f"--token={task['token']}", "--count", str(share), "--batch", str(share), "--previews", "binary",
                    cwd=ROOT, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, limit=2**28,
                )
                for front, share in zip(fronts, shares)
            ]
            began = time.monotonic()
            subscribed = [int(await reported(client, "READY", timeout=600)) for client in clients]
            connect_seconds = time.monotonic() - began
            held = (await http.get(f"/v1/tasks/{task['id']}")).json()["status"] == "queued"
            await http.post(f"/v1/tasks/{gate['id']}/cancel")
            results = [orjson.loads(await reported(client, "DONE", timeout=600)) for client in clients]
            for client in clients:
                await client.wait()
            detail = await finished(http, task["id"])
        replay_reads = xrange_calls(redis) - reads_before
    last = detail["last_seq"]
    per_front = []
    for result in results:
        sockets = result["sockets"]
        complete = sum(s["gapless"] and s["terminal"] and s["last"] == last and not s["error"] for s in sockets)
        per_front.append({"sockets": len(sockets), "complete": complete})
    errors = collections.Counter(why(s["error"]) for r in results for s in r["sockets"] if s["error"])
    return {
        "subscribers": count, "status": detail["status"], "events": last, "gate_held": held,
        "connect_seconds": round(connect_seconds, 2), "subscribed": sum(subscribed),
        "complete": sum(f["complete"] for f in per_front), "per_front_end": per_front,
        "failed": count - sum(f["complete"] for f in per_front), "errors": dict(errors.most_common()),
        "replay_reads": replay_reads,
        "redis_connections": {"front_ends": [named(peaks, f) for f in fronts], "total": peaks.total},
    }


async def submits(redis: RedisServer, front: ServerProcess, count: int) -> dict[str, Any]:
    client = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "bench._submitters", "--port", str(front.port), "--count", str(count),
        "--connections", str(count), "--body", SUBMITTED,
        cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**28,
    )
    assert client.stdin is not None
    await reported(client, "READY", timeout=120)
    with ConnectionPeaks(redis) as peaks:
        client.stdin.write(b"GO\n")
        await client.stdin.drain()
        done = orjson.loads(await reported(client, "DONE", timeout=600))
    await client.wait()
    return {
        "submits": count, "statuses": done["statuses"], "seconds": round(done["ended"] - done["began"], 2),
        "redis_connections": {"front_end": named(peaks, front), "total": peaks.total},
    }


async def run(args: Any, report: Report) -> None:
    raise_fd_limit(max(4096, 2 * max([*args.counts, *args.submits]) + 1024))
    with tempfile.TemporaryDirectory(prefix="latentcast-bench-") as folder, cluster(Path(folder), args.server_arg) as (redis, fronts):
        runs = [await subscribers(redis, fronts, count) for count in args.counts]
        bursts = [await submits(redis, fronts[0], count) for count in args.submits]
    report.data.update(runs=runs, submits=bursts, server_args=args.server_arg)
    report.line("-- subscribers split over two front-ends, connecting at once")
    report.table(
        ["subscribers", "got every event", "refused or closed", "why", "connect s", "replay reads",
         "Redis conns per front-end", "Redis conns in all"],
        [
            [r["subscribers"], r["complete"], r["failed"], "; ".join(f"{n}x {e}" for e, n in r["errors"].items()) or "-",
             r["connect_seconds"], r["replay_reads"], " / ".join("-" if c is None else str(c) for c in r["redis_connections"]["front_ends"]),
             r["redis_connections"]["total"]]
            for r in runs
        ],
    )
    report.line("-- submissions at once to one front-end")
    report.table(
        ["submits", "statuses", "seconds", "Redis conns of the front-end", "Redis conns in all"],
        [[b["submits"], b["statuses"], b["seconds"], "-" if b["redis_connections"]["front_end"] is None
          else b["redis_connections"]["front_end"], b["redis_connections"]["total"]] for b in bursts],
    )
    if not args.smoke:
        for r in runs:
            report.target(f"subscribers of {r['subscribers']} that got every event", r["complete"], r["subscribers"], at_least=True)
        for b in bursts:
            answered = b["statuses"].get("201", 0) + b["statuses"].get("429", 0)
            report.target(f"submits of {b['submits']} accepted or refused as queue full", answered, b["submits"], at_least=True)


def main() -> None:
    parse = parser(__doc__.split("\n\n")[0])
    parse.add_argument("--counts", type=int, nargs="+", default=[300, 600, 1000], help="subscribers, over both front-ends")
    parse.add_argument("--submits", type=int, nargs="*", default=[300, 500], help="submissions at once to one front-end")
    parse.add_argument("--server-arg", action="append", default=[], help="passed to every `serve` and `worker` (repeatable)")
    args = parse.parse_args()
    if args.smoke:
        args.counts, args.submits = [4], [4]
    report = Report("scaleout", "1h. subscribers and submissions at once on two Redis front-ends")
    asyncio.run(run(args, report))
    report.finish(args.json)


if __name__ == "__main__":
    main()
