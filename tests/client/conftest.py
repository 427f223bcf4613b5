"""Fixtures of the client tests: an `AsyncClient` on the shared real server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from latentcast.client import AsyncClient
from tests.support import ServerProcess

# Tiny and quick; LONG leaves time to act while the task runs (the tiny model does ~10-100 it/s).
SMALL = {"width": 64, "height": 64, "num_inference_steps": 4}
LONG = {"width": 64, "height": 64, "num_inference_steps": 60}


@pytest.fixture
async def api(server: ServerProcess) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.base_url, timeout=30, reconnect_delay=(0.05, 0.5)) as client:
        yield client
