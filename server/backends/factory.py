"""Chooses the backend from `--broker`: none for one process (SQLite + memory), redis:// for many."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from server.backends.base import EventBus, FileStore, JobQueue, TaskStore
from server.config import Settings


@dataclasses.dataclass
class Backend:
    store: TaskStore
    queue: JobQueue
    bus: EventBus
    files: FileStore
    # True when the queue outlives the process (Redis): nothing to rebuild at start.
    durable_queue: bool
    start: Callable[[], Awaitable[None]]
    close: Callable[[], Awaitable[None]]
    announce: Callable[[dict[str, Any]], Awaitable[None]]
    """Publish one worker's heartbeat (name, device, model, aliases, task)."""
    live_workers: Callable[[], Awaitable[list[dict[str, Any]]]]
    """Heartbeats of the workers alive now, wherever they run."""


def open_backend(settings: Settings, *, follow_feed: bool = True) -> Backend:
    if settings.broker is None:
        return _local(settings)
    if settings.broker.startswith(("redis://", "rediss://", "unix://")):
        return _redis(settings, follow_feed=follow_feed)
    raise ValueError(f"--broker must be a redis:// URL, got {settings.broker!r}")


def _local(settings: Settings) -> Backend:
    from server.backends.disk_files import DiskFiles
    from server.backends.local_bus import LocalBus
    from server.backends.memory_queue import MemoryQueue
    from server.backends.sqlite_store import SQLiteStore

    store = SQLiteStore(settings.database)
    heartbeats: dict[str, dict[str, Any]] = {}

    async def nothing() -> None:
        return None

    async def announce(beat: dict[str, Any]) -> None:
        heartbeats[beat["name"]] = beat

    async def live_workers() -> list[dict[str, Any]]:
        return list(heartbeats.values())

    return Backend(
        store=store,
        queue=MemoryQueue(),
        bus=LocalBus(),
        files=DiskFiles(settings.outputs, settings.base_url),
        durable_queue=False,
        start=nothing,
        close=store.close,
        announce=announce,
        live_workers=live_workers,
    )


def _redis(settings: Settings, *, follow_feed: bool) -> Backend:
    import redis.asyncio as aioredis

    from server.backends.disk_files import DiskFiles
    from server.backends.redis_bus import RedisBus
    from server.backends.redis_files import RedisFiles
    from server.backends.redis_keys import Keys
    from server.backends.redis_queue import RedisQueue
    from server.backends.redis_store import RedisStore

    assert settings.broker is not None
    client = aioredis.Redis.from_url(settings.broker)
    keys = Keys(settings.redis_prefix)
    store = RedisStore(client, keys, retention=settings.retention)
    queue = RedisQueue(client, keys, visibility_timeout=settings.visibility_timeout)
    bus = RedisBus(client, keys, follow_feed=follow_feed)
    files: FileStore = (
        DiskFiles(settings.outputs_dir, settings.base_url)
        if settings.outputs_dir is not None
        else RedisFiles(settings.broker, client, keys, settings.base_url, settings.retention)
    )

    async def start() -> None:
        await queue.ensure_group()
        await bus.start()

    async def close() -> None:
        await bus.close()
        await store.close()

    beat_ttl = max(3 * settings.heartbeat_seconds, 5)

    async def announce(beat: dict[str, Any]) -> None:
        await client.set(keys.worker(beat["name"]), json.dumps({**beat, "beat_at": time.time()}), ex=int(beat_ttl))

    async def live_workers() -> list[dict[str, Any]]:
        names = [key async for key in client.scan_iter(match=keys.workers, count=500)]
        beats = await client.mget(names) if names else []
        return sorted((json.loads(b) for b in beats if b), key=lambda beat: beat["name"])

    return Backend(
        store=store,
        queue=queue,
        bus=bus,
        files=files,
        durable_queue=True,
        start=start,
        close=close,
        announce=announce,
        live_workers=live_workers,
    )
