"""What every benchmark shares: the machine it ran on, the server to measure, statistics, the report.

The processes (server, redis-server) are the tests' (harness.processes).

Each benchmark prints a human-readable report and, as its last line, `RESULT {json}` with every
number it measured (the smoke tests read that line); `--json PATH` also writes the JSON to a file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import resource
import statistics
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from harness.processes import ServerProcess
from latentcast.wire import ends_stream as is_terminal  # noqa: F401 (the benchmarks' import)

PYTHON = sys.executable


# -- the machine -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """The hardware and software a result was measured on, and how busy the machine was."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    with contextlib.suppress(ImportError):
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def describe_machine(info: dict[str, Any]) -> str:
    return (
        f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, Python {info['python']}"
        + (f", torch {info['torch']} ({info.get('torch_threads')} threads)" if "torch" in info else "")
        + f"; load average at start {info['load_average'][0]}"
    )


# -- arguments and the report ------------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(description=description)
    parse.add_argument("--smoke", action="store_true", help="a few seconds' run that only checks the benchmark works")
    parse.add_argument("--json", type=Path, default=None, help="also write the result to this file")
    return parse


class Report:
    def __init__(self, name: str, title: str) -> None:
        self.name = name
        self.title = title
        self.machine = machine()
        self.data: dict[str, Any] = {"benchmark": name, "machine": self.machine}
        self.targets: list[dict[str, Any]] = []
        print(f"== {title}")
        print(f"   machine: {describe_machine(self.machine)}")

    def line(self, text: str = "") -> None:
        print(text, flush=True)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        cells = [[_cell(v) for v in row] for row in rows]
        widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
        print("   " + "  ".join(h.rjust(w) for h, w in zip(headers, widths)))
        for row in cells:
            print("   " + "  ".join(c.rjust(w) for c, w in zip(row, widths)))
        print(flush=True)

    def target(self, what: str, measured: float, limit: float, unit: str = "", *, at_least: bool = False) -> bool:
        met = measured >= limit if at_least else measured <= limit
        sign = ">=" if at_least else "<="
        self.targets.append({"target": what, "measured": measured, "limit": limit, "unit": unit, "met": met})
        print(f"   target {what}: {_cell(measured)}{unit} ({sign} {_cell(limit)}{unit}) {'MET' if met else 'MISSED'}")
        return met

    def finish(self, json_path: Path | None = None) -> dict[str, Any]:
        self.data["targets"] = self.targets
        self.data["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        blob = orjson.dumps(self.data, option=orjson.OPT_SERIALIZE_NUMPY)
        if json_path is not None:
            json_path.write_bytes(orjson.dumps(self.data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        print(f"   load average at end {self.data['machine']['load_average_end'][0]}")
        print("RESULT " + blob.decode(), flush=True)
        return self.data


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.1f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


# -- statistics ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), nearest-rank on the sorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- the server under measurement -----------------------------------------------------------------


# A benchmark waits longer than a test for its server: on a loaded machine a niced worker process
# took more than the tests' 240 s to import torch and diffusers.
SERVER_START_SECONDS = 1200.0


@contextlib.contextmanager
def measured_server(*args: str) -> Iterator[ServerProcess]:
    """`latentcast serve *args` (harness.processes, as the tests start it) in a data dir thrown away after."""
    with tempfile.TemporaryDirectory(prefix="latentcast-bench-") as folder:
        server = ServerProcess(Path(folder), *args)
        try:
            server.start(wait=False)
            server.wait_ready(timeout=SERVER_START_SECONDS)
            yield server
        finally:
            server.stop()


async def reported(process: asyncio.subprocess.Process, prefix: str, timeout: float) -> str:
    """What a client process (bench._subscribers, bench._submitters, bench._broadcast) reports
    next on the line that starts with `prefix` (READY, DONE, ...), past the prefix."""
    assert process.stdout is not None
    while True:
        raw = await asyncio.wait_for(process.stdout.readline(), timeout)
        if not raw:
            raise RuntimeError(f"client process exited ({await process.wait()}) before {prefix}")
        line = raw.decode().strip()
        if line.startswith(prefix):
            return line[len(prefix) :].strip()


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file limit (children inherit it) as far as allowed; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_bytes(pid: int) -> int:
    import psutil

    return psutil.Process(pid).memory_info().rss


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """`GET /metrics` as {(sample name, sorted labels): value}."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def metric(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
