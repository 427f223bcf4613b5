"""`latentcast generate` and `latentcast watch` end to end, as a user runs them (a subprocess)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from PIL import Image

from tests.security.helpers import create_key
from tests.support import ROOT, ServerProcess, collect

TASK_LINE = re.compile(r"task ([0-9a-f]+), seed \d+ \(follow it: latentcast watch \1 --token=([0-9a-f]{48})\)")


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "latentcast", *args]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATENTCAST_")}
    return {**env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **extra}


def latentcast(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(*args), cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=120, check=False
    )


def _image(path: Path) -> tuple[str | None, tuple[int, int]]:
    with Image.open(path) as image:
        return image.format, image.size


def _wait_for_line(process: subprocess.Popen[str], pattern: str, seen: list[str]) -> None:
    """Read the process's stderr until a line contains `pattern` (keeping what was read)."""
    assert process.stderr is not None
    while True:
        line = process.stderr.readline()
        assert line, f"stderr ended before {pattern!r}:\n{''.join(seen)}"
        seen.append(line)
        if pattern in line:
            return


def test_generate_saves_a_png_of_the_asked_size_with_progress(server: ServerProcess, tmp_path: Path) -> None:
    done = latentcast(
        "generate", "a lighthouse at dusk", "-o", "out.png", "--size", "80x64", "--steps", "4", "--seed", "11",
        "--negative", "fog", "--scheduler", "unipc", "--server", server.base_url, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "out.png\n"
    assert _image(tmp_path / "out.png") == ("PNG", (80, 64))
    assert (tmp_path / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    progress = done.stderr
    match = TASK_LINE.search(progress)
    assert match, progress
    params = httpx.get(f"{server.base_url}/v1/tasks/{match.group(1)}", timeout=10).json()["params"]
    assert (params["seed"], params["negative_prompt"], params["scheduler"]) == (11, "fog", "unipc")
    assert "queued: position" in progress
    assert re.search(r"\[#+\] step 4/4 100% \| [\d.]+ it/s \| ETA [\d.]+s", progress), progress
    assert "step 1/4" in progress and "done in" in progress


def test_generate_several_images_in_another_format(server: ServerProcess, tmp_path: Path) -> None:
    done = latentcast(
        "generate", "two cats", "-o", "shots/pic.jpg", "--images", "2", "--size", "64x64", "--steps", "4", "-q",
        cwd=tmp_path, LATENTCAST_URL=server.base_url,  # the server from the environment
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["shots/pic-0.jpg", "shots/pic-1.jpg"]
    assert done.stderr == ""  # --quiet
    for name in ("pic-0.jpg", "pic-1.jpg"):
        assert _image(tmp_path / "shots" / name) == ("JPEG", (64, 64))


def test_generate_saves_previews_and_an_animation(server: ServerProcess, tmp_path: Path) -> None:
    done = latentcast(
        "generate", "a blooming flower", "--size", "64x64", "--steps", "5", "--format", "webp", "-q",
        "--preview-format", "webp",
        "--previews", "frames", "--animation", "denoise.webp", "--server", server.base_url, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    [image, animation] = done.stdout.split()
    assert image.endswith(".webp") and _image(tmp_path / image) == ("WEBP", (64, 64))
    # a preview per step (flow control may leave an older one out; the last step always has one)
    frames = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert "step-005.webp" in frames and set(frames) <= {f"step-{i:03d}.webp" for i in range(1, 6)}
    assert _image(tmp_path / "frames" / "step-005.webp") == ("WEBP", (8, 8))  # as it came: latent size
    assert animation == "denoise.webp"
    with Image.open(tmp_path / animation) as anim:  # the previews enlarged to the picture's size
        assert anim.format == "WEBP" and anim.size == (64, 64) and anim.n_frames >= 2
        # the previews (120 ms each), then the result held 1.5 s (identical neighbours may be merged)
        durations = []
        for index in range(anim.n_frames):
            anim.seek(index)
            anim.load()
            durations.append(anim.info["duration"])
        assert sum(durations) == 120 * len(frames) + 1500


def test_failures_exit_non_zero_with_the_servers_message(server: ServerProcess, tmp_path: Path) -> None:
    refused = latentcast(
        "generate", "a cat", "--size", "65x70", "--steps", "0", "--server", server.base_url, cwd=tmp_path
    )
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [  # each field once, with its rule
        "latentcast: refused:",
        "  width: Input should be a multiple of 8 (rule: multiple_of)",
        "  height: Input should be a multiple of 8 (rule: multiple_of)",
        "  num_inference_steps: Input should be greater than or equal to 1 (rule: greater_than_equal)",
    ]
    assert list(tmp_path.iterdir()) == []

    unreachable = latentcast("generate", "a cat", "--server", "http://127.0.0.1:9", cwd=tmp_path)
    assert unreachable.returncode == 1 and "cannot reach http://127.0.0.1:9" in unreachable.stderr

    usage = latentcast("generate", "a cat", "-o", "out.txt", "--server", server.base_url, cwd=tmp_path)
    assert usage.returncode == 2 and "use .png, .jpg or .webp" in usage.stderr
    mismatch = latentcast("generate", "a cat", "-o", "a.png", "--format", "jpeg", cwd=tmp_path)
    assert mismatch.returncode == 2 and "not a jpeg file name" in mismatch.stderr
    bad_size = latentcast("generate", "a cat", "--size", "big", cwd=tmp_path)
    assert bad_size.returncode == 2 and "WIDTHxHEIGHT" in bad_size.stderr

    wrong_token = latentcast("watch", "0123456789abcdef", "--token", "nope", "--server", server.base_url, cwd=tmp_path)
    assert wrong_token.returncode == 1 and "no task '0123456789abcdef'" in wrong_token.stderr


def test_ctrl_c_cancels_the_task_on_the_server(server: ServerProcess, tmp_path: Path) -> None:
    process = subprocess.Popen(
        _command("generate", "a very long walk", "--size", "128x128", "--steps", "100", "-o", "never.png",
                 "--server", server.base_url),
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    seen: list[str] = []
    _wait_for_line(process, "step 1/100", seen)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    stderr = "".join(seen) + err
    assert process.returncode == 130, stderr
    match = TASK_LINE.search(stderr)
    assert match, stderr
    task_id, token = match.groups()
    assert f"task {task_id} cancelled" in stderr and out == ""
    # the CLI waited for the cancel to land: the task has already ended, with task_cancel
    detail = httpx.get(f"{server.base_url}/v1/tasks/{task_id}", timeout=10).json()
    assert detail["status"] == "cancelled"
    events = asyncio.run(collect(server.ws_url, task_id, token, previews="none"))
    assert events[-1]["type"] == "task_cancel"
    assert max(e["message"]["step"] for e in events if e["type"] == "task_progress") < 100
    assert not (tmp_path / "never.png").exists()


def test_watch_follows_an_existing_task_and_ctrl_c_only_stops_watching(
    server: ServerProcess, tmp_path: Path
) -> None:
    http = httpx.Client(base_url=server.base_url, timeout=10)
    body = {"prompt": "a windmill", "width": 64, "height": 64, "num_inference_steps": 6}
    created = http.post("/v1/tasks", json=body).json()
    watched = latentcast(
        "watch", created["id"], "--token", created["token"], "-o", "got.png", "--previews", "frames",
        "--animation", "anim.gif", "--server", server.base_url, cwd=tmp_path,
    )
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.split() == ["got.png", "anim.gif"]
    assert _image(tmp_path / "got.png") == ("PNG", (64, 64))
    assert _image(tmp_path / "anim.gif")[0] == "GIF"
    assert list((tmp_path / "frames").iterdir())  # at least the newest preview (all of them if live)
    assert "step 6/6" in watched.stderr and f"task {created['id']} done" in watched.stderr

    # without -o it prints the outputs' URLs
    urls = latentcast("watch", created["id"], "--token", created["token"], "-q", "--server", server.base_url, cwd=tmp_path)
    assert urls.returncode == 0 and urls.stdout.strip().endswith(f"/v1/files/{created['id']}/0.png")

    # Ctrl-C while watching someone's task leaves the task running
    long = http.post("/v1/tasks", json={**body, "width": 1024, "height": 1024, "num_inference_steps": 100}).json()
    process = subprocess.Popen(
        _command("watch", long["id"], "--token", long["token"], "--server", server.base_url),
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    seen: list[str] = []
    _wait_for_line(process, "step 1/100", seen)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130 and "stopped watching" in err
    # the task goes on after the watcher has left: its log keeps growing, still running
    left_at = http.get(f"/v1/tasks/{long['id']}").json()["last_seq"]
    while (detail := http.get(f"/v1/tasks/{long['id']}").json())["last_seq"] < left_at + 4:
        assert detail["status"] == "running", detail
        time.sleep(0.05)
    assert detail["status"] == "running"
    assert http.post(f"/v1/tasks/{long['id']}/cancel").status_code == 202
    http.close()


def test_a_server_with_keys_asks_for_the_cli_options(start_server, tmp_path: Path) -> None:
    create_key(tmp_path / "data", "ops")
    keyed = start_server("--workers", "0")
    missing = latentcast("generate", "a cat", "--server", keyed.base_url, cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == [
        "latentcast: this server needs an API key: pass --api-key KEY or set $LATENTCAST_API_KEY "
        "(its operator makes one with `latentcast keys create`)"
    ]
    wrong = latentcast("generate", "a cat", "--server", keyed.base_url, cwd=tmp_path, LATENTCAST_API_KEY="lc_nope")
    assert wrong.returncode == 1
    assert wrong.stderr.splitlines() == [
        "latentcast: the API key (--api-key or $LATENTCAST_API_KEY) was refused: "
        "the API key is not valid (unknown or revoked)"
    ]
    watched = latentcast("watch", "0123456789abcdef", "--server", keyed.base_url, cwd=tmp_path)
    assert watched.returncode == 1 and "pass --api-key KEY or set $LATENTCAST_API_KEY" in watched.stderr
