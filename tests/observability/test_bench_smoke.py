"""Each benchmark runs end to end in a few seconds (`--smoke`) and prints its report.

The real runs take minutes and want an idle machine; they are not part of the test suite
(bench/README.md has their commands and results).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import orjson
import pytest

from tests.support import ROOT

# A smoke run takes seconds on an idle machine and minutes on a busy one: the limits are only safety nets.
SAFETY_NET_SECONDS = 600
pytestmark = pytest.mark.timeout(SAFETY_NET_SECONDS + 60)


def run_bench(name: str, *args: str, timeout: float = SAFETY_NET_SECONDS) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--smoke", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    lines = completed.stdout.splitlines()
    assert lines[0].startswith("== ") and "machine:" in lines[1], completed.stdout
    result_lines = [line for line in lines if line.startswith("RESULT ")]
    assert len(result_lines) == 1 and lines[-1] == result_lines[0], completed.stdout
    result = orjson.loads(result_lines[0][len("RESULT ") :])
    assert result["benchmark"] == name
    assert result["machine"]["cores"] >= 1 and "load_average" in result["machine"]
    return result


def test_overhead_smoke():
    result = run_bench("overhead")
    (size,) = result["sizes"].values()
    assert size["bare_median"] > 0 and size["service_median"] > 0
    assert size["identical_images"] is True  # the same work: the service's picture is the bare call's


def test_previews_smoke():
    result = run_bench("previews")
    methods = {cell["method"] for cell in result["cells"]}
    assert methods == {"latent2rgb", "taesd", "vae"}
    assert all(cell["median_ms"] > 0 and cell["calls"] >= 1 for cell in result["cells"])


def test_latency_smoke():
    result = run_bench("latency")
    runs = {run["subscribers"]: run for run in result["runs"]}
    assert runs[0]["status"] == "completed"
    assert runs[2]["all_complete"] and runs[2]["complete_subscribers"] == 2
    assert runs[2]["p50_ms"] is not None and runs[2]["p99_ms"] >= runs[2]["p50_ms"]
    sizes = runs[2]["preview_bytes"]  # what one subscriber received, the envelope beside each image
    assert sizes["previews"] >= 1 and sizes["frame_bytes_mean"] > sizes["image_bytes_mean"] > 0
    # the baseline: the minimal streamer ran the same task for as many subscribers, a preview a step
    minimal = runs[2]["minimal"]
    assert minimal["all_complete"] and minimal["complete_subscribers"] == 2
    assert minimal["previews_received_mean"] == result["settings"]["steps"]
    assert minimal["task_seconds"] > 0 and minimal["p99_ms"] >= minimal["p50_ms"] > 0
    # the yardstick: the bare broadcast of the same frames, its handshakes counted as the service's are
    bare = runs[2]["bare"]
    assert bare["complete"] == 2 and bare["frames"] > 0
    assert bare["cpu_with_handshakes_us_per_frame"] >= bare["cpu_us_per_frame"] >= 0
    assert runs[2]["api_cpu_with_handshakes_us_per_frame"] >= runs[2]["api_cpu_us_per_frame"] >= 0


def test_connections_smoke():
    result = run_bench("connections")
    (run,) = result["runs"]
    assert run["gauge_holding"] == run["sockets"] == 20
    assert run["gauge_after_close"] == 0
    assert run["rss_holding"] > 0


def test_submit_smoke():
    args = ["--redis"] if shutil.which("redis-server") else []
    result = run_bench("submit", *args)
    for backend in result["backends"].values():
        (run,) = backend["runs"]
        assert run["statuses"] == {"201": run["tasks"]}
        assert run["counted_by_server"] == run["tasks"]
        assert run["per_second"] > 0


def test_scaleout_smoke():
    result = run_bench("scaleout")
    (run,) = result["runs"]
    assert run["status"] == "completed" and run["complete"] == run["subscribers"] == 4 and run["errors"] == {}
    assert run["replay_reads"] >= 1 and all(n and n <= 50 for n in run["redis_connections"]["front_ends"])
    (burst,) = result["submits"]
    assert burst["statuses"] == {"201": 4}


def test_memory_smoke():
    result = run_bench("memory")
    assert [c["finished"] for c in result["checkpoints"]] == [0, 1, 2]
    assert result["unfinished_after"] == 0
    assert all(c["rss"] > 0 for c in result["checkpoints"])


def test_drawing_smoke():
    # the shipped default model is a folder the training script wrote: no need to train one here
    result = run_bench("drawing", "--model", "builtin:shapes")
    (size,) = result["sizes"].values()
    assert len(size["preview_psnr_per_step"]) == result["steps"]
    assert len(result["step_ms"]) == 2 and all(ms > 0 for ms in result["step_ms"].values())


@pytest.mark.parametrize("name", ["overhead", "previews", "latency", "connections", "submit", "memory", "drawing", "scaleout"])
def test_every_benchmark_is_documented(name):
    readme = (ROOT / "bench" / "README.md").read_text()
    assert f"python -m bench.{name}" in readme


def test_transformer_sizes_smoke():
    result = run_bench("transformer_sizes")
    sizes = result["sizes"]
    assert len(sizes) == 5 and next(iter(sizes)).startswith("run 3")
    assert all(row["parameters_m"] > 0 and row["training_ms"] > 0 and row["denoising_ms"] > 0 for row in sizes.values())
