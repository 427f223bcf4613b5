"""1c. Event latency from the step callback to a subscriber's receipt, with 1, 100 and 1,000 subscribers.

A real server (`latentcast serve`, a subprocess) runs one measured task (256 px, 28 steps, a preview
after every step) while N WebSocket subscribers, spread over client processes of 250 sockets each,
follow it. Latency is a frame's receipt time minus its event's `time`, which the worker stamps when
the step callback emits it (both on this machine's clock), for every event that happened after the
socket subscribed. To have every subscriber in place before the task starts, the worker is held by
a long "gate" task that is cancelled once all clients are ready. Each subscriber must get every
event, seq 1 to the terminal one, without a gap. The task's own duration (task_start to
task_postprocess_end) is compared with the runs that have one subscriber (and those with none).

CPU: of the API process (all its threads: what it spends on each frame sent, store and queue
included), of its worker process, and of the subscriber client processes, which share the same
cores. After each run with subscribers, a bare `websockets` broadcast server (bench._broadcast)
sends the frames one subscriber of that run received, at the same pace, to the same number of
subscriber clients, while the service's worker denoises a task nobody follows (so that torch
takes the cores from it as it did from the service): its CPU per frame is the yardstick for the
API process's.

The baseline: after each run with subscribers, the minimal streamer a user would write instead
(bench._minimal_streamer: one process, diffusers' `pipe()` in a thread of its own, a step callback
that makes the same preview and hands it to `websockets.broadcast`) streams the same task to as
many subscriber clients, measured the same way: its run time (`pipe()` to the terminal frame:
prompt encoding, denoising, decode and PNG, against the service's task_preprocess_start to
task_postprocess_end), its latencies, and the CPU its event loop's thread spent per frame.

The bytes of the preview frames one subscriber received (whole message, and the image alone) show
what every subscriber costs the network.

    python -m bench.latency
    python -m bench.latency --counts 0 100 --previews none
    python -m bench.latency --counts 1 --size 1024 --no-bare --no-minimal --no-warmup   # bytes per frame
"""

from __future__ import annotations

import asyncio
import math
import pickle
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson

from bench.common import PYTHON, Report, measured_server, metric, parser, percentile, raise_fd_limit, reported, scrape
from harness.processes import ROOT, ServerProcess
from harness.waiting import eventually
from latentcast.server.engine.builtin import ensure_builtin
from latentcast.wire import PREVIEW_MODES, decode_frame

PER_PROCESS = 250
MODEL = "builtin:tiny"  # what harness.processes' server serves, and the minimal streamer loads
T = TypeVar("T")
LIFECYCLE = (
    "task_queue", "task_accept", "task_preprocess_start", "task_preprocess_end", "task_assign", "task_start",
    "task_output_full", "task_end", "task_postprocess_start", "task_postprocess_end",
)


async def _clients(url: str, task: dict[str, Any], count: int, previews: str, record: Path | None = None) -> list[asyncio.subprocess.Process]:
    """Subscriber client processes for `count` sockets; the first socket's frames go to `record`."""
    processes = []
    for start in range(0, count, PER_PROCESS):
        recording = ["--record", str(record)] if record is not None and start == 0 else []
        processes.append(
            await asyncio.create_subprocess_exec(
                PYTHON, "-m", "bench._subscribers", "--url", url, "--task", task["id"], f"--token={task['token']}",
                "--count", str(min(PER_PROCESS, count - start)), "--previews", previews, *recording,
                cwd=ROOT, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, limit=2**28,
            )
        )
    return processes


def server_cpu(pid: int) -> tuple[float, float, float]:
    """CPU seconds of the API process's event-loop thread (the main one), of the whole API process,
    and of its worker processes."""
    import psutil

    api = psutil.Process(pid)
    loop = sum(t.user_time + t.system_time for t in api.threads() if t.id == pid)
    times = api.cpu_times()
    workers = sum(sum(c.cpu_times()[:2]) for c in api.children(recursive=True))
    return loop, times.user + times.system, workers


async def while_diffusing(http: httpx.AsyncClient, size: int, during: Awaitable[T]) -> T:
    """`during`, while the service's worker denoises a task of the measured size that nobody
    follows: the bare server's frames then compete with torch for the cores as the service's did."""
    busy = (await http.post("/v1/tasks", json={
        "prompt": "busy", "width": size, "height": size, "num_inference_steps": 100, "preview_method": "none",
    })).json()
    while (await http.get(f"/v1/tasks/{busy['id']}")).json()["status"] != "running":
        await asyncio.sleep(0.05)
    try:
        return await during
    finally:
        await http.post(f"/v1/tasks/{busy['id']}/cancel")


async def bare_broadcast(frames: Path, count: int, previews: str) -> dict[str, float]:
    """The same frames to `count` subscribers from a bare `websockets` server: its CPU, and the clients'."""
    server = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "bench._broadcast", "--frames", str(frames), "--expect", str(count),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.PIPE,
    )
    assert server.stdin is not None
    port = int(await reported(server, "LISTENING", timeout=600))
    processes = await _clients(f"ws://127.0.0.1:{port}/", {"id": "bare", "token": ""}, count, previews)
    for process in processes:
        await reported(process, "READY", timeout=300)
    await reported(server, "READY", timeout=600)
    server.stdin.write(b"go\n")
    results = [orjson.loads(await reported(process, "DONE", timeout=600)) for process in processes]
    server.stdin.write(b"end\n")
    done = orjson.loads(await reported(server, "DONE", timeout=600))
    server.stdin.close()
    for process in (*processes, server):
        await process.wait()
    return {
        "cpu_seconds": done["cpu_seconds"],
        "frames": done["frames"],
        "cpu_us_per_frame": 1e6 * done["cpu_seconds"] / done["frames"],
        "cpu_with_handshakes_us_per_frame": 1e6 * done["cpu_seconds_with_handshakes"] / done["frames"],
        "client_cpu_seconds": sum(r["cpu_seconds"] for r in results),
        "complete": sum(s["gapless"] and s["terminal"] for r in results for s in r["sockets"]),
    }


def preview_bytes(frames: Path) -> dict[str, float] | None:
    """Mean bytes of the binary preview frames one subscriber received (bench._subscribers
    --record): the whole message (length prefix, envelope, image) and the image alone."""
    with frames.open("rb") as file:
        recorded: list[tuple[float, int, bytes]] = pickle.load(file)
    sizes = [(len(payload), len(decode_frame(payload).image or b"")) for _, opcode, payload in recorded if opcode == 0x2]
    if not sizes:
        return None
    return {
        "previews": len(sizes),
        "frame_bytes_mean": sum(frame for frame, _ in sizes) / len(sizes),
        "image_bytes_mean": sum(image for _, image in sizes) / len(sizes),
        "frame_bytes_total": sum(frame for frame, _ in sizes),
    }


async def one_run(server: ServerProcess, http: httpx.AsyncClient, count: int, args: Any) -> dict[str, Any]:
    # Gates hold the worker while the subscribers connect (queued ones add time if connecting is slow).
    gates = [
        (await http.post("/v1/tasks", json={
            "prompt": "gate", "width": 256, "height": 256, "num_inference_steps": 100, "preview_method": "none",
        })).json()
        for _ in range(1 if count < 100 else 3)
    ]
    body = {
        "prompt": "a lighthouse at dusk", "width": args.size, "height": args.size, "num_inference_steps": args.steps,
        "seed": 7, "preview_every": 1,
    }
    response = await http.post("/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    task = response.json()
    frames = server.data_dir / f"frames-{count}.pickle"
    cpu_connecting = server_cpu(server.pid)  # (the gates' events are recorded meanwhile: a few ms)
    processes = await _clients(server.ws_url, task, count, args.previews, record=frames)
    ready_began = time.monotonic()
    for process in processes:
        await reported(process, "READY", timeout=300)
    connect_seconds = time.monotonic() - ready_began
    before = await asyncio.to_thread(scrape, server.base_url)
    cpu_before = server_cpu(server.pid)
    # The measured task must still be waiting when every subscriber is ready.
    gate_held = (await http.get(f"/v1/tasks/{task['id']}")).json()["status"] == "queued"
    for gate in reversed(gates):
        await http.post(f"/v1/tasks/{gate['id']}/cancel")
    results = [orjson.loads(await reported(process, "DONE", timeout=600)) for process in processes]
    for process in processes:
        await process.wait()
    async def ended() -> dict[str, Any] | None:
        detail = (await http.get(f"/v1/tasks/{task['id']}")).json()
        return detail if detail["status"] in ("completed", "failed", "cancelled") else None

    detail = await eventually(ended, f"task {task['id']} ended", 600)
    cpu_after = server_cpu(server.pid)
    after = await asyncio.to_thread(scrape, server.base_url)
    times = detail["times"]
    loop_cpu, api_cpu, worker_cpu = (after_ - before_ for after_, before_ in zip(cpu_after, cpu_before))
    api_cpu_with_handshakes = cpu_after[1] - cpu_connecting[1]
    sent = metric(after, "latentcast_events_sent_total", transport="websocket") - metric(
        before, "latentcast_events_sent_total", transport="websocket"
    )
    last_seq = detail["last_seq"]
    return {
        "subscribers": count,
        "task_seconds": times["task_postprocess_end"] - times["task_start"],
        # the whole run, prompt encoding included: what the minimal streamer's pipe() call does
        "run_seconds": times["task_postprocess_end"] - times["task_preprocess_start"],
        "status": detail["status"],
        "events": last_seq,
        "gate_held": gate_held,
        "connect_seconds": round(connect_seconds, 3),
        **received(results, last_seq),
        "previews_dropped": metric(after, "latentcast_previews_dropped_total", transport="websocket")
        - metric(before, "latentcast_previews_dropped_total", transport="websocket"),
        "frames_sent": sent,
        "loop_cpu_seconds": loop_cpu,
        "api_cpu_seconds": api_cpu,
        "worker_cpu_seconds": worker_cpu,
        "loop_cpu_us_per_frame": 1e6 * loop_cpu / sent if sent else None,
        "api_cpu_us_per_frame": 1e6 * api_cpu / sent if sent else None,
        "api_cpu_with_handshakes_us_per_frame": 1e6 * api_cpu_with_handshakes / sent if sent else None,
        "preview_bytes": preview_bytes(frames) if count else None,
        "bare": await while_diffusing(http, args.size, bare_broadcast(frames, count, args.previews)) if count and args.bare else None,
    }


def received(results: list[dict[str, Any]], last_seq: int) -> dict[str, Any]:
    """What the subscriber client processes reported (bench._subscribers DONE): the latencies,
    whether each socket got every event from seq 1 to `last_seq`, and their CPU."""
    sockets = [s for r in results for s in r["sockets"]]
    latencies: dict[str, list[float]] = {}
    for result in results:
        for type_, values in result["latencies"].items():
            latencies.setdefault(type_, []).extend(values)
    every = [v for values in latencies.values() for v in values]
    lifecycle = [v for t, values in latencies.items() if t in LIFECYCLE for v in values]
    complete = [s["gapless"] and s["terminal"] and s["last"] == last_seq and not s["error"] for s in sockets]
    return {
        "latency_samples": len(every),
        "p50_ms": 1000 * percentile(every, 50) if every else None,
        "p99_ms": 1000 * percentile(every, 99) if every else None,
        "max_ms": 1000 * max(every) if every else None,
        "progress_p99_ms": 1000 * percentile(latencies.get("task_progress", []), 99) if latencies.get("task_progress") else None,
        "lifecycle_p99_ms": 1000 * percentile(lifecycle, 99) if lifecycle else None,
        "all_complete": all(complete),
        "complete_subscribers": sum(complete),
        "previews_received_mean": (sum(s["previews"] for s in sockets) / len(sockets)) if sockets else 0,
        "client_cpu_seconds": sum(r["cpu_seconds"] for r in results),
        "errors": sorted({s["error"] for s in sockets if s["error"]})[:3],
    }


async def minimal_run(model: Path, count: int, args: Any) -> dict[str, Any]:
    """The same task, followed by as many subscribers, streamed by the minimal streamer
    (bench._minimal_streamer) instead of the service: its task time, the latencies its subscribers
    saw, and the CPU its event loop's thread (the sending; the pipeline runs on another) spent per
    frame. The service idles meanwhile."""
    streamer = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "bench._minimal_streamer", "--model", str(model), "--size", str(args.size),
        "--steps", str(args.steps), "--expect", str(count),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.PIPE,
    )
    assert streamer.stdin is not None
    port = int(await reported(streamer, "LISTENING", timeout=600))
    processes = await _clients(f"ws://127.0.0.1:{port}/", {"id": "minimal", "token": ""}, count, "binary")
    for process in processes:
        await reported(process, "READY", timeout=300)
    await reported(streamer, "READY", timeout=600)  # loaded and warmed up
    loop_before, process_before, _ = server_cpu(streamer.pid)
    streamer.stdin.write(b"go\n")
    done = orjson.loads(await reported(streamer, "DONE", timeout=600))
    results = [orjson.loads(await reported(process, "DONE", timeout=600)) for process in processes]
    loop_after, process_after, _ = server_cpu(streamer.pid)
    streamer.stdin.close()
    for process in (*processes, streamer):
        await process.wait()
    frames = (args.steps + 1) * count  # a frame a step, then the terminal one, to every subscriber
    loop_cpu = loop_after - loop_before
    return {
        "task_seconds": done["task_seconds"],
        **received(results, args.steps + 1),
        "frames_sent": frames,
        "loop_cpu_seconds": loop_cpu,
        "process_cpu_seconds": process_after - process_before,
        "loop_cpu_us_per_frame": 1e6 * loop_cpu / frames,
    }


async def run(args: Any, report: Report) -> None:
    raise_fd_limit(max(4096, 2 * max(args.counts) + 1024))
    runs = []
    with measured_server("--preview-min-interval", "0", "--max-queue", "100000") as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as http:
            # warm-up: first-run costs (previewer, allocator) are not part of any measurement
            if args.warmup:
                await one_run(server, http, min(1, max(args.counts)), args)
            for count in args.counts:
                result = await one_run(server, http, count, args)
                if count and args.minimal:
                    result["minimal"] = await minimal_run(ensure_builtin(MODEL, server.data_dir), count, args)
                runs.append(result)
                report.line(
                    f"   {count:>5} subscribers: task {result['task_seconds']:.3f}s, p50 {_ms(result['p50_ms'])}, "
                    f"p99 {_ms(result['p99_ms'])}, complete {result['complete_subscribers']}/{count}"
                    + ("" if result["gate_held"] else " (the gate ended before every client was ready)")
                )
                if minimal := result.get("minimal"):
                    report.line(
                        f"          minimal streamer: task {minimal['task_seconds']:.3f}s, p50 {_ms(minimal['p50_ms'])}, "
                        f"p99 {_ms(minimal['p99_ms'])}, complete {minimal['complete_subscribers']}/{count}"
                    )
    bases = {n: _mean([r["task_seconds"] for r in runs if r["subscribers"] == n]) for n in (0, 1)}
    rows = []
    for r in runs:
        r["slowdown"] = r["task_seconds"] / bases[0] - 1 if not math.isnan(bases[0]) else None
        r["vs_one"] = r["task_seconds"] / bases[1] if not math.isnan(bases[1]) else None
        bare = r["bare"]
        r["cpu_per_frame_vs_bare"] = r["api_cpu_us_per_frame"] / bare["cpu_us_per_frame"] if bare and r["api_cpu_us_per_frame"] else None
        r["cpu_with_handshakes_vs_bare"] = (
            r["api_cpu_with_handshakes_us_per_frame"] / bare["cpu_with_handshakes_us_per_frame"]
            if bare and r["api_cpu_with_handshakes_us_per_frame"] else None
        )
        rows.append([
            r["subscribers"], r["task_seconds"], f"{100 * r['slowdown']:+.1f}%" if r["slowdown"] is not None else "-",
            f"{r['vs_one']:.3f}x" if r["vs_one"] is not None else "-",
            _ms(r["p50_ms"]), _ms(r["p99_ms"]), _ms(r["max_ms"]),
            f"{r['complete_subscribers']}/{r['subscribers']}", f"{r['previews_received_mean']:.1f}", int(r["previews_dropped"]),
            f"{r['api_cpu_seconds']:.2f}", _us(r["api_cpu_us_per_frame"]), _us(bare and bare["cpu_us_per_frame"]),
            f"{r['cpu_per_frame_vs_bare']:.2f}x" if r["cpu_per_frame_vs_bare"] else "-",
            f"{r['worker_cpu_seconds']:.2f}", f"{r['client_cpu_seconds']:.2f}",
            _kb(r["preview_bytes"] and r["preview_bytes"]["frame_bytes_mean"]),
        ])
    report.line()
    report.line(f"-- {args.size}x{args.size} px, {args.steps} steps, previews every step ({args.previews} on the socket)")
    report.table(
        ["subscribers", "task s", "vs none", "vs 1", "p50", "p99", "max", "got every event", "previews/sub",
         "previews dropped", "API CPU s", "API us/frame", "bare us/frame", "vs bare", "worker CPU s", "clients CPU s",
         "KB/preview frame"],
        rows,
    )
    side_by_side = [
        [
            r["subscribers"], r["run_seconds"], m["task_seconds"], f"{r['run_seconds'] / m['task_seconds']:.2f}x",
            _ms(r["p99_ms"]), _ms(m["p99_ms"]), f"{r['complete_subscribers']}, {m['complete_subscribers']}",
            _us(r["api_cpu_us_per_frame"]), _us(r["loop_cpu_us_per_frame"]), _us(m["loop_cpu_us_per_frame"]),
            _us(r["bare"] and r["bare"]["cpu_us_per_frame"]),
            _us(r["api_cpu_with_handshakes_us_per_frame"]), _us(r["bare"] and r["bare"]["cpu_with_handshakes_us_per_frame"]),
            f"{r['cpu_with_handshakes_vs_bare']:.2f}x" if r["cpu_with_handshakes_vs_bare"] else "-",
        ]
        for r in runs
        if (m := r.get("minimal"))
    ]
    if side_by_side:
        report.line(
            "-- side by side: the minimal streamer (bench/_minimal_streamer.py), the same task and subscribers; "
            "run = prompt encoding to the stored picture"
        )
        report.table(
            ["subscribers", "Latentcast run s", "minimal run s", "Latentcast vs minimal", "Latentcast p99",
             "minimal p99", "got every event (L, m)", "API us/frame", "API loop us/frame", "minimal loop us/frame",
             "bare us/frame", "API us/frame with handshakes", "bare us/frame with handshakes", "API vs bare"],
            side_by_side,
        )
    report.data["runs"] = runs
    report.data["settings"] = {"size": args.size, "steps": args.steps, "previews": args.previews}
    if not args.smoke:
        _targets(runs, report)


def _targets(runs: list[dict[str, Any]], report: Report) -> None:
    """Issue 28's, each run against the minimal streamer's and the bare broadcast's of the same
    task in the same run."""
    for r in runs:
        count, minimal = r["subscribers"], r.get("minimal")
        if minimal:
            limit = 1.05 if count == 1 else 1.00
            report.target(f"run time vs the minimal streamer, {count} subscribers",
                          round(r["run_seconds"] / minimal["task_seconds"], 3), limit, "x")
            report.target(f"p99 callback-to-receipt vs the minimal streamer, {count} subscribers",
                          round(r["p99_ms"] / minimal["p99_ms"], 3), 1.0, "x")
        if r["cpu_with_handshakes_vs_bare"] and count >= 100:
            report.target(f"API CPU per frame vs bare websockets, handshakes included, {count} subscribers",
                          round(r["cpu_with_handshakes_vs_bare"], 2), 1.5, "x")
        if count == 1000:
            report.target("subscribers of 1,000 that got every event", r["complete_subscribers"], 1000, at_least=True)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _us(value: float | None) -> str:
    return "-" if not value else f"{value:.1f}"


def _kb(value: float | None) -> str:
    return "-" if not value else f"{value / 1000:.2f}"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def main() -> None:
    parse = parser(__doc__.split("\n\n")[0])
    parse.add_argument("--counts", type=int, nargs="+", default=[0, 1, 100, 1000, 1, 100, 1000, 1, 0])
    parse.add_argument("--no-bare", dest="bare", action="store_false", help="skip the bare websockets broadcasts")
    parse.add_argument(
        "--no-minimal", dest="minimal", action="store_false", help="skip the minimal streamer's runs (binary previews only)"
    )
    parse.add_argument("--size", type=int, default=256)
    parse.add_argument("--steps", type=int, default=28)
    parse.add_argument("--previews", default="binary", choices=PREVIEW_MODES)
    parse.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the uncounted first run")
    args = parse.parse_args()
    args.minimal &= args.previews == "binary"  # the minimal streamer sends binary preview frames only
    if args.smoke:
        args.counts, args.size, args.steps, args.warmup = [0, 2], 64, 3, False
    report = Report("latency", "1c. event latency, step callback -> subscriber, by number of subscribers")
    asyncio.run(run(args, report))
    report.finish(args.json)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
