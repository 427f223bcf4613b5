"""The Redis client every Redis part of a process shares: a bounded pool that makes a command wait
its turn, a reconnect at once, and failures in the ports' terms.

- One pool of at most `pool_size` connections per process, however many requests and subscribers
  it serves. A command that finds them all in use waits for one, first come first served, for up
  to `pool_timeout` seconds. redis-py's default pool (100 connections) raises at once instead, and
  a burst of a few hundred subscribers read that as an outage.
- A connection the pool kept across a Redis restart is dead; its first command fails. One
  immediate retry on a fresh connection makes the first request after Redis returns succeed,
  where redis-py's default (three retries, up to 10 s apart) would hold a request for seconds
  while Redis is down instead of answering 503 at once.
- Connection failures leave as `StoreUnavailable`, so the API (503) and the workers (retry)
  handle an outage without knowing which backend runs; a wait for a connection that outlasts
  `pool_timeout` leaves as `StoreBusy`, its kind that says the backend answers and this process
  asked too much of it at once.
- Each connection is named after its process (`latentcast-HOST-PID`), so Redis's `CLIENT LIST`
  tells an operator which front-end or worker holds which connections.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterDownError,
    ConnectionError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)

from latentcast.server.tasks.ports import StoreBusy, StoreUnavailable

DEFAULT_POOL_SIZE = 50
DEFAULT_POOL_TIMEOUT_SECONDS = 10.0

# Connecting to a host that is down (not refusing) must not hold a request for the OS's minutes.
CONNECT_TIMEOUT_SECONDS = 2.0
# Longer than any blocking read (XREAD BLOCK, XREADGROUP BLOCK), which would otherwise time out.
SOCKET_TIMEOUT_SECONDS = 10.0
LOST = (ConnectionError, TimeoutError, OSError)

# redis-py types a reply as any client might get it: `bytes | str` (a client made with
# decode_responses gets str), a stream read in RESP2's shape or RESP3's. A client `connect` makes
# gets bytes, in the RESP2 shapes redis-py keeps by default (legacy_responses); the stores `cast`
# a reply to what it is, with these for stream reads.
StreamEntry = tuple[bytes, dict[bytes, bytes]]
StreamRead = list[tuple[bytes, list[StreamEntry]]]  # XREAD, XREADGROUP: each stream's new entries


class PoolTimeout(ConnectionError):
    """No connection of the pool came free within its timeout. A redis `ConnectionError`, so that
    redis-py's own users of the pool (pub/sub) retry it as they retry a lost connection."""


class WaitingPool(BlockingConnectionPool):
    """redis-py's blocking pool, whose timeout is told apart from a failed connect: it raises
    `PoolTimeout` where its parent raises the same `ConnectionError` as for a dead Redis."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)
        except ConnectionError as exc:
            # The parent's wait ran out: a ConnectionError raised from the wait's TimeoutError. A
            # connect that fails is a ConnectionError from an OSError, or a redis TimeoutError.
            if isinstance(exc.__cause__, asyncio.TimeoutError):
                raise PoolTimeout(
                    f"all {self.max_connections} connections stayed in use for {self.timeout:g} s"
                ) from exc
            raise


# Redis answers but refuses to write until it recovers or an operator acts: its memory is full
# (OOM), its disk is (MISCONF), it is a replica (READONLY), its master is down, a script holds it
# (BUSY), ... An outage to wait out, as a lost connection is, not an error of the request.
# (redis-py gives some their own class, and drops their code from the message.)
REFUSED = (OutOfMemoryError, ReadOnlyError, MasterDownError, TryAgainError, ClusterDownError)
REFUSED_CODES = ("MISCONF", "NOREPLICAS", "BUSY ")


def store_error(exc: Exception) -> StoreUnavailable:
    """The ports' name for a lost connection, a busy pool or a refusal of Redis's."""
    if isinstance(exc, PoolTimeout):
        return StoreBusy(f"Redis: {exc}")
    return StoreUnavailable(f"Redis: {exc}")


def _refusal(exc: ResponseError) -> bool:
    return isinstance(exc, REFUSED) or str(exc).startswith(REFUSED_CODES)


class _Pipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error)
        except LOST as exc:
            raise store_error(exc) from exc
        except ResponseError as exc:
            if _refusal(exc):
                raise store_error(exc) from exc
            raise


class RedisClient(aioredis.Redis):
    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)
        except LOST as exc:
            raise store_error(exc) from exc
        except ResponseError as exc:
            if _refusal(exc):
                raise store_error(exc) from exc
            raise

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> _Pipeline:
        return _Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


def connection_name() -> str:
    """What this process names its connections: `CLIENT LIST` shows it (Redis takes no spaces or
    control characters in a name, so any in the host name become `_`)."""
    return re.sub(r"[^!-~]", "_", f"latentcast-{socket.gethostname()}-{os.getpid()}")


def connect(
    url: str, *, pool_size: int = DEFAULT_POOL_SIZE, pool_timeout: float = DEFAULT_POOL_TIMEOUT_SECONDS
) -> RedisClient:
    """A client of `url` over a pool of its own of at most `pool_size` connections, where a command
    waits up to `pool_timeout` seconds for one (nothing connects until the first command)."""
    pool = WaitingPool.from_url(
        url,
        max_connections=pool_size,
        timeout=pool_timeout,
        retry=Retry(NoBackoff(), 1),
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        client_name=connection_name(),
    )
    # (redis-py annotates from_pool as returning a Redis, where it builds `cls`)
    return RedisClient.from_pool(pool)  # type: ignore[return-value]
