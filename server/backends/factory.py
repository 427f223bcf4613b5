"""Chooses the backend from `--broker`: none for one process (SQLite + memory), redis:// for many."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from latentcast.server.config import Settings
from latentcast.server.security.keys import KeyStore
from latentcast.server.tasks.catalog import ModelCatalog
from latentcast.server.tasks.ports import EventBus, FileStore, JobQueue, Outbox, TaskStore
from latentcast.server.tasks.service import TaskService

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from latentcast.server.backends.redis_names import RedisNames


@dataclasses.dataclass
class Backend:
    """One backend's parts, opened together; only the top (server.app, server.cli) wires them in."""

    store: TaskStore
    queue: JobQueue
    bus: EventBus
    files: FileStore
    keys: KeyStore
    outbox: Outbox  # the webhook deliveries the store writes with their events
    # True when the queue outlives the process (Redis): nothing to rebuild at start.
    durable_queue: bool
    start: Callable[[], Awaitable[None]]
    close: Callable[[], Awaitable[None]]
    announce: Callable[[dict[str, Any]], Awaitable[None]]
    """Publish one worker's heartbeat (name, device, model, aliases, task)."""
    live_workers: Callable[[], Awaitable[list[dict[str, Any]]]]
    """Heartbeats of the workers alive now, wherever they run."""

    def task_service(self, catalog: ModelCatalog) -> TaskService:
        """The service over this backend's store, queue and bus: the one way to them."""
        return TaskService(self.store, self.queue, self.bus, self.files, catalog, self.outbox)


def open_backend(settings: Settings, *, follow_feed: bool = True) -> Backend:
    if settings.broker is None:
        return _local(settings)
    _check_broker(settings.broker)
    return _redis(settings, follow_feed=follow_feed)


def open_key_store(settings: Settings) -> KeyStore:
    """The API keys alone, where the server keeps them: for `latentcast keys` and `serve`'s start-up check."""
    if settings.broker is None:
        from latentcast.server.backends.sqlite_apikeys import SQLiteKeyStore

        return SQLiteKeyStore(settings.database)
    _check_broker(settings.broker)
    from latentcast.server.backends.redis_apikeys import RedisKeyStore
    from latentcast.server.backends.redis_names import RedisNames

    return RedisKeyStore(_client(settings), RedisNames(settings.redis_prefix))


def open_files(settings: Settings) -> FileStore:
    """The output files alone, as the backend keeps them: for a worker process, which writes its
    outputs itself rather than sending them through the API process."""
    if settings.broker is None:
        from latentcast.server.backends.disk_files import DiskFiles

        return DiskFiles(settings.outputs, settings.base_url)
    from latentcast.server.backends.redis_names import RedisNames

    return _redis_files(settings, _client(settings), RedisNames(settings.redis_prefix))


def _client(settings: Settings) -> aioredis.Redis:
    """This process's client of the broker, over a pool of its own sized by the settings."""
    from latentcast.server.backends.redis_client import connect

    assert settings.broker is not None
    return connect(settings.broker, pool_size=settings.redis_pool_size, pool_timeout=settings.redis_pool_timeout)


def _redis_files(settings: Settings, client: aioredis.Redis, names: RedisNames) -> FileStore:
    from latentcast.server.backends.disk_files import DiskFiles
    from latentcast.server.backends.redis_files import RedisFiles

    assert settings.broker is not None
    if settings.outputs_dir is not None:
        return DiskFiles(settings.outputs_dir, settings.base_url)
    return RedisFiles(client, names, settings.base_url, settings.retention)


def _check_broker(broker: str) -> None:
    if not broker.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"--broker must be a redis:// URL, got {broker!r}")


def _local(settings: Settings) -> Backend:
    from latentcast.server.backends.local_bus import LocalBus
    from latentcast.server.backends.memory_queue import MemoryQueue
    from latentcast.server.backends.sqlite_apikeys import SQLiteKeyStore
    from latentcast.server.backends.sqlite_store import SQLiteStore

    store = SQLiteStore(settings.database)
    keys = SQLiteKeyStore(settings.database)
    heartbeats: dict[str, dict[str, Any]] = {}

    async def nothing() -> None:
        return None

    async def close() -> None:
        await keys.close()
        await store.close()

    async def announce(beat: dict[str, Any]) -> None:
        heartbeats[beat["name"]] = _stamped(beat)

    async def live_workers() -> list[dict[str, Any]]:
        return list(heartbeats.values())

    return Backend(
        store=store,
        queue=MemoryQueue(),
        bus=LocalBus(),
        files=open_files(settings),
        keys=keys,
        outbox=store.outbox,
        durable_queue=False,
        start=nothing,
        close=close,
        announce=announce,
        live_workers=live_workers,
    )


def _redis(settings: Settings, *, follow_feed: bool) -> Backend:
    from latentcast.server.backends.redis_apikeys import RedisKeyStore
    from latentcast.server.backends.redis_bus import RedisBus
    from latentcast.server.backends.redis_names import RedisNames
    from latentcast.server.backends.redis_queue import RedisQueue
    from latentcast.server.backends.redis_store import RedisStore

    client = _client(settings)
    names = RedisNames(settings.redis_prefix)
    store = RedisStore(client, names, retention=settings.retention)
    queue = RedisQueue(client, names, visibility_timeout=settings.visibility_timeout)
    bus = RedisBus(client, names, follow_feed=follow_feed)
    files = _redis_files(settings, client, names)

    async def start() -> None:
        await queue.ensure_group()
        await bus.start()

    async def close() -> None:
        await bus.close()
        await store.close()

    beat_ttl = settings.silence_limit

    async def announce(beat: dict[str, Any]) -> None:
        await client.set(names.worker(beat["name"]), json.dumps(_stamped(beat)), ex=int(beat_ttl))

    async def live_workers() -> list[dict[str, Any]]:
        found = [name async for name in client.scan_iter(match=names.workers, count=500)]
        beats = await client.mget(found) if found else []
        return sorted((json.loads(b) for b in beats if b), key=lambda beat: beat["name"])

    return Backend(
        store=store,
        queue=queue,
        bus=bus,
        files=files,
        keys=RedisKeyStore(client, names),  # shares the client, closed with the store
        outbox=store.outbox,
        durable_queue=True,
        start=start,
        close=close,
        announce=announce,
        live_workers=live_workers,
    )


def _stamped(beat: dict[str, Any]) -> dict[str, Any]:
    """The beat with its `beat_at`: the worker's own last sign of life where it says (a stopped worker
    process is announced by its host, which must not make it look fresh), else the time of announcing."""
    return {**beat, "beat_at": beat.get("beat_at") or time.time()}
