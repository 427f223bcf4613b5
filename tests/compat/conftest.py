"""Fixtures of the compatibility tests: servers set up for one provider case."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import ServerProcess


def _server(factory: pytest.TempPathFactory, name: str, *args: str) -> Iterator[ServerProcess]:
    process = ServerProcess(factory.mktemp(name), "--preview-min-interval", "0", *args).start()
    yield process
    process.stop()


# The full and the bare server refuse every task they are sent, so neither runs a worker process
# (`--workers 0`: an API that only queues, ready at once, without the worker's torch).


@pytest.fixture(scope="session")
def full_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose queue is always full (--max-queue 0): every submit is refused with 429."""
    yield from _server(tmp_path_factory, "full", "--max-queue", "0", "--workers", "0")


@pytest.fixture(scope="session")
def aliased_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose model also answers to the providers' other model names (besides the default
    ones). The page examples run on it, once (they are the slow tests; every other test runs on both
    backends of `server`)."""
    yield from _server(tmp_path_factory, "aliased", "--model-alias", "sd3-large", "--model-alias", "sd3-large-turbo")


@pytest.fixture(scope="session")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose model answers to none of the providers' model names."""
    yield from _server(tmp_path_factory, "bare", "--replace-model-aliases", "--model-alias", "house-model", "--workers", "0")
