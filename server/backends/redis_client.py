"""The Redis client every Redis part shares: it reconnects at once, and it fails in the ports' terms.

- A connection the pool kept across a Redis restart is dead; its first command fails. One
  immediate retry on a fresh connection makes the first request after Redis returns succeed,
  where redis-py's default (three retries, up to 10 s apart) would hold a request for seconds
  while Redis is down instead of answering 503 at once.
- Connection failures leave as `StoreUnavailable`, so the API (503) and the workers (retry)
  handle an outage without knowing which backend runs.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, TimeoutError

from latentcast.server.tasks.ports import StoreUnavailable

# Connecting to a host that is down (not refusing) must not hold a request for the OS's minutes.
CONNECT_TIMEOUT_SECONDS = 2.0
# Longer than any blocking read (XREAD BLOCK, XREADGROUP BLOCK), which would otherwise time out.
SOCKET_TIMEOUT_SECONDS = 10.0
LOST = (ConnectionError, TimeoutError, OSError)


class _Pipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error)
        except LOST as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc


class RedisClient(aioredis.Redis):
    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)
        except LOST as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> _Pipeline:
        return _Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


def connect(url: str) -> RedisClient:
    """A client of `url` (nothing connects until the first command)."""
    return RedisClient.from_url(
        url,
        retry=Retry(NoBackoff(), 1),
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
    )
