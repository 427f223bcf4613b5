"""Fixtures of the security tests: a server with API keys, made by the real CLI before it starts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.helpers import Keyed, create_key
from tests.support import ServerProcess


@pytest.fixture(scope="session")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyed]:
    folder = tmp_path_factory.mktemp("keyed")
    alice, bob = create_key(folder, "alice"), create_key(folder, "bob", "--max-in-flight", "4")
    ops = create_key(folder, "ops", "--admin")
    server = ServerProcess(folder, "--preview-min-interval", "0").start()
    yield Keyed(server, alice, bob, ops)
    server.kill()


# -- limits and hostile input (test_limits, test_hostile) -------------------------------------

LIMITED_ARGS = (
    "--workers", "0",  # whatever is accepted stays queued: counts are exact
    "--max-body-bytes", "4096",
    "--header-timeout", "1",
    "--min-body-rate", "200",
    "--max-prompt-chars", "50",
    "--max-images", "2",
    "--max-subscriptions", "3",
    "--ws-idle-timeout", "1.5",
    "--ws-max-message-bytes", "200000",
    "--ws-ping-interval", "0.5",
    "--ws-ping-timeout", "0.5",
)


@pytest.fixture(scope="session")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server without keys or worker and with every limit tight, so that tests reach them quickly."""
    server = ServerProcess(tmp_path_factory.mktemp("limited"), *LIMITED_ARGS).start()
    yield server
    server.stop()
