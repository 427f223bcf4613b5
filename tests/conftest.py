"""Fixtures: a shared real server for most tests, and a factory for tests that need their own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import RedisServer, ServerProcess


@pytest.fixture(scope="session", params=["sqlite", "redis"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The service as a user starts it: one process on SQLite, or on Redis with a worker of its own.

    Every test that uses it runs against both backends: clients must not tell them apart.
    """
    folder = tmp_path_factory.mktemp(f"server-{request.param}")
    args = ["--preview-min-interval", "0"]
    redis = None
    if request.param == "redis":
        redis = RedisServer(folder / "redis").start()
        args += ["--broker", redis.url]
    process = ServerProcess(folder, *args).start()
    yield process
    process.stop()
    if redis is not None:
        redis.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers of the test's own (same data dir unless told otherwise); all stopped at the end."""
    started: list[ServerProcess] = []

    def start(*args: str, data_dir: Path | None = None, wait: bool = True, port: int | None = None) -> ServerProcess:
        process = ServerProcess(data_dir or tmp_path / "data", *args, port=port)
        started.append(process)
        return process.start(wait=wait)

    yield start
    for process in started:
        process.kill()


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        yield http
