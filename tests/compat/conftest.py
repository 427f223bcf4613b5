"""Fixtures of the compatibility tests: servers set up for one provider case, and real HTTP
receivers for Wiro's callbackUrl."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.compat.receiver import Receiver
from tests.support import ServerProcess


@pytest.fixture(params=["sqlite", "redis"])
def hooks_server(request: pytest.FixtureRequest, _shared_servers: Any) -> ServerProcess:
    """`server` started with `--webhook-allow-private`, so that Wiro callbacks may reach the tests'
    receivers on loopback (a server without it refuses them: test_wiro)."""
    return _shared_servers.get(request.param, "--webhook-allow-private")


@pytest.fixture
async def hooks_client(hooks_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hooks_server.base_url, timeout=60) as http:
        yield http


@pytest.fixture
def receiver() -> Iterator[Callable[[list[int]], Receiver]]:
    made: list[Receiver] = []

    def make(statuses: list[int]) -> Receiver:
        made.append(Receiver(list(statuses)))
        return made[-1]

    yield make
    for one in made:
        one.close()


def _server(factory: pytest.TempPathFactory, name: str, *args: str) -> Iterator[ServerProcess]:
    process = ServerProcess(factory.mktemp(name), "--preview-min-interval", "0", *args).start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def full_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose queue is always full (--max-queue 0): every submit is refused with 429."""
    yield from _server(tmp_path_factory, "full", "--max-queue", "0")


@pytest.fixture(scope="session")
def aliased_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose model also answers to the providers' other model names (besides the default
    ones). The page examples run on it, once (they are the slow tests; every other test runs on both
    backends of `server`)."""
    yield from _server(tmp_path_factory, "aliased", "--model-alias", "sd3-large", "--model-alias", "sd3-large-turbo")


@pytest.fixture(scope="session")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose model answers to none of the providers' model names."""
    yield from _server(tmp_path_factory, "bare", "--replace-model-aliases", "--model-alias", "house-model")
