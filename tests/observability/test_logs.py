"""Structured logs of a real server: one line per task status change, never a token."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading

import httpx
import orjson
import pytest

from harness.processes import READY_TIMEOUT, answers_ok
from harness.waiting import until
from tests.support import ROOT, SMALL, collect, eventually, free_port


async def run_one_task(server) -> dict:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        response = await http.post("/v1/tasks", json={"prompt": "a lighthouse at dusk", **SMALL})
        assert response.status_code == 201, response.text
        task = response.json()
    events = await collect(server.ws_url, task["id"], task["token"], previews="none")
    assert events[-1]["type"] == "task_postprocess_end"
    return task


async def test_json_logs_have_one_line_per_status_change_and_no_token(start_server):
    server = start_server("--log-format", "json")
    task = await run_one_task(server)
    server.stop()
    text = server.log()
    lines = [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    assert any(line["logger"] == "uvicorn.error" for line in lines)  # uvicorn's own lines are JSON too
    mine = [line for line in lines if line.get("task") == task["id"]]
    assert [line["status"] for line in mine] == [
        "queued", "accepted", "preprocessing", "running", "postprocessing", "completed"
    ]
    assert [line["previous"] for line in mine[1:]] == ["queued", "accepted", "preprocessing", "running", "postprocessing"]
    assert all(line["logger"] == "latentcast.task" and line["seq"] >= 1 for line in mine)
    assert mine[1]["worker"] and mine[-1]["seconds"] > 0
    assert task["token"] not in text
    assert "\r" not in text  # no progress bar in JSON mode


# The shared server is this one: text logs, into a file. Its log holds other tests' tasks too.
@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
async def test_text_logs_without_a_terminal_have_no_progress_bar(server):
    task = await run_one_task(server)
    # the status line is written as the task ends, not necessarily before its last event is read
    await eventually(lambda: f"task {task['id']} completed" in server.log(), "a status line for the finished task")
    text = server.log()
    assert f"task {task['id']} completed" in text
    assert f"task {task['id']} running" in text
    assert task["token"] not in text
    assert "\r" not in text and "\x1b[K" not in text


def test_a_terminal_shows_a_progress_bar_per_running_task(tmp_path):
    """stderr on a pseudo-terminal: the console draws `<task> [###---] step/steps it/s` in place."""
    master, slave = pty.openpty()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "latentcast", "serve", "--port", str(port), "--data-dir", str(tmp_path)],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )
    os.close(slave)
    output = bytearray()

    def read() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            output.extend(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        base = f"http://127.0.0.1:{port}"
        until(lambda: answers_ok(f"{base}/readyz"), "the server ready", READY_TIMEOUT, interval=0.1)
        task = httpx.post(f"{base}/v1/tasks", json={"prompt": "x", **SMALL, "num_inference_steps": 6}).json()
        until(lambda: httpx.get(f"{base}/v1/tasks/{task['id']}").json()["status"] == "completed", "the task finished", 240)
        # the status line follows the task's end
        until(lambda: f"task {task['id']} completed".encode() in output, "a status line for the finished task", 60)
    finally:
        process.terminate()
        process.wait(30)
        os.close(master)
    text = output.decode(errors="replace")
    assert f"\r\x1b[K{task['id']} [" in text
    assert "6/6" in text and "it/s" in text
    assert f"task {task['id']} completed" in text
    assert task["token"] not in text
