"""Fixtures: a shared real server for most tests, and a factory for tests that need their own."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.receiver import Receiver, Reply
from tests.support import HOOK_FLAGS, RedisServer, ServerProcess

# Set before torch is imported, here and in every server the tests start. The suite runs two xdist
# workers on two cores, each with its servers: torch's default of one thread per core makes each
# step of a small model wait for a thread the busy machine has descheduled (steps 3 to 10 times
# slower than on one thread). An operator's own setting is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")


class _SharedServers:
    """One server per backend for the whole session, started when a test first asks for it.

    Not a parametrized session fixture: with `--dist loadfile` each xdist worker runs a file's
    sqlite tests, then its redis ones, then the next file's, and pytest tears a session fixture
    down whenever its param changes, so every file started both servers again.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._servers: dict[tuple[str, ...], ServerProcess] = {}
        self._redis: list[RedisServer] = []

    def get(self, backend: str, *flags: str) -> ServerProcess:
        """The server of `backend` started with `flags` (each set of flags is a server of its own)."""
        key = (backend, *flags)
        if key not in self._servers:
            folder = self._folder / "-".join(flag.strip("-") for flag in key)
            args = ["--preview-min-interval", "0", *flags]
            if backend == "redis":
                self._redis.append(RedisServer(folder / "redis").start())
                args += ["--broker", self._redis[-1].url]
            self._servers[key] = ServerProcess(folder, *args).start()
        return self._servers[key]

    def stop(self) -> None:
        """Killed, not stopped: a graceful stop is tested elsewhere, and would drain whatever a test
        left running, each server in turn, at the end of the session."""
        for process in self._servers.values():
            process.kill()
        for redis in self._redis:
            redis.stop(signal.SIGKILL)


@pytest.fixture(scope="session")
def _shared_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_SharedServers]:
    servers = _SharedServers(tmp_path_factory.mktemp("servers"))
    yield servers
    servers.stop()


@pytest.fixture(params=["sqlite", "redis"])
def server(request: pytest.FixtureRequest, _shared_servers: _SharedServers) -> ServerProcess:
    """The service as a user starts it: one process on SQLite, or on Redis with a worker of its own.

    Every test that uses it runs against both backends: clients must not tell them apart. Shared
    by every test of the session, so a test asserts on its own tasks, never on the server's totals.
    """
    return _shared_servers.get(request.param)


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


@pytest.fixture(params=["sqlite", "redis"])
def hooks_server(request: pytest.FixtureRequest, _shared_servers: _SharedServers) -> ServerProcess:
    """`server` whose webhooks may reach the tests' receivers on loopback (a server without
    `--webhook-allow-private` refuses them) and are retried within a fraction of a second."""
    return _shared_servers.get(request.param, *HOOK_FLAGS)


@pytest.fixture
async def hooks_client(hooks_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hooks_server.base_url, timeout=60) as http:
        yield http


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """Make receivers (`Receiver`'s arguments); all closed at the end of the test."""
    made: list[Receiver] = []

    def make(script: list[Reply | int] | None = None, *, port: int = 0) -> Receiver:
        made.append(Receiver(script, port=port))
        return made[-1]

    yield make
    for one in made:
        one.close()
