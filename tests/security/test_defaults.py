"""Safe defaults of `serve`: without keys it listens on loopback only and says it is open; a
public address without keys is refused unless --insecure; with a key it is allowed."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.security.helpers import create_key
from tests.support import ROOT, ServerProcess

PUBLIC = ("--host", "0.0.0.0", "--workers", "0")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    """Started side by side (each start loads the libraries: seconds): the default, a public one
    with --insecure, and a public one with a key."""
    folder = tmp_path_factory.mktemp("defaults")
    create_key(folder / "keyed", "ops", "--admin")
    started = {
        "default": ServerProcess(folder / "default", "--workers", "0"),
        "insecure": ServerProcess(folder / "insecure", *PUBLIC, "--insecure"),
        "keyed": ServerProcess(folder / "keyed", *PUBLIC),
    }
    for server in started.values():
        server.start(wait=False)
    try:
        for server in started.values():
            server.wait_ready()
        yield started
    finally:
        for server in started.values():
            server.kill()


def test_without_keys_a_public_address_is_refused_and_the_hint_makes_the_key_it_needs(tmp_path: Path) -> None:
    data = tmp_path / "elsewhere"
    done = subprocess.run(
        [sys.executable, "-m", "latentcast", "serve", *PUBLIC, "--data-dir", str(data)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0 without API keys" in done.stderr and "--insecure" in done.stderr
    # the command it suggests puts the key where this server looks: in its --data-dir, not the default
    (hint,) = re.findall(r"Create one \(`([^`]+)`\)", done.stderr)
    assert hint == f"latentcast keys create --name NAME --data-dir {data}"
    made = subprocess.run(
        [sys.executable, "-m", *shlex.split(hint.replace("NAME", "ops"))], cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    server = ServerProcess(data, *PUBLIC).start()
    try:
        assert f"API keys required (`latentcast keys list --data-dir {data}` shows them)" in server.log()
        assert httpx.get(f"{server.base_url}/v1/tasks").status_code == 401
    finally:
        server.kill()


def test_without_keys_the_default_is_loopback_and_says_so(servers: dict[str, ServerProcess]) -> None:
    server = servers["default"]
    assert "No API keys: open to anyone on this machine (listening on 127.0.0.1:" in server.log()
    assert httpx.get(f"{server.base_url}/v1/tasks").status_code == 200  # open, as before keys


def test_insecure_or_a_key_allows_a_public_address(servers: dict[str, ServerProcess]) -> None:
    assert "No API keys and --insecure: anyone who can reach 0.0.0.0:" in servers["insecure"].log()
    assert httpx.get(f"{servers['insecure'].base_url}/v1/tasks").status_code == 200
    assert "API keys required" in servers["keyed"].log()
    assert httpx.get(f"{servers['keyed'].base_url}/v1/tasks").status_code == 401
