"""Fixtures of the client tests: an `AsyncClient` on the shared real server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from latentcast.client import AsyncClient
from tests.support import ServerProcess


@pytest.fixture
async def api(server: ServerProcess) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.base_url, timeout=30, reconnect_delay=(0.05, 0.5)) as client:
        yield client
