"""The live feed across processes: one reader per front-end, not one connection per socket.

Every recorded event is also added to the capped `feed` stream (by the append script). Each
front-end runs a single XREAD BLOCK loop on it and hands events to its local listeners, the same
in-process dispatch the single-process bus uses. If the reader ever falls behind the cap, the
subscribers' cursors see the hole and read it back from the task's own stream.

Cancel requests for running tasks go over pub/sub to every worker; workers also re-check the
task's cancel flag while they run, so a lost message only delays a cancel by a keepalive period.

Both loops end on a flag as well as on cancellation: redis-py (8.1, Python 3.11) can lose a
`CancelledError` that lands while a connection is being re-made after an outage, and the loop then
goes on reading; a pub/sub read with no timeout would then hold `close()` forever. So the
listener polls with a timeout and every loop checks `_closing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import cast

import redis.asyncio as aioredis

from latentcast.server.backends.local_bus import LocalBus
from latentcast.server.backends.redis_client import LOST, StreamRead, store_error
from latentcast.server.backends.redis_names import RedisNames
from latentcast.server.backends.redis_store import event_from_fields, preview_from_fields
from latentcast.server.protocol.events import RecordedEvent
from latentcast.server.tasks.outage import Backoff
from latentcast.server.tasks.ports import Listener, StoreUnavailable

log = logging.getLogger("latentcast.redis")

# How long close() may wait for the cancel listener if its cancellation was lost.
CLOSE_POLL_SECONDS = 1.0


class RedisBus:
    def __init__(self, client: aioredis.Redis, names: RedisNames, *, follow_feed: bool) -> None:
        self.redis = client
        self.names = names
        self.follow_feed = follow_feed
        self._local = LocalBus()
        self._cancel_listeners: list[Callable[[str, str], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.follow_feed:
            last = await self.redis.xinfo_stream(self.names.feed) if await self.redis.exists(self.names.feed) else None
            start_id = last["last-generated-id"] if last else b"0-0"
            self._tasks.append(loop.create_task(self._follow(start_id)))
        self._tasks.append(loop.create_task(self._cancels()))

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def publish(self, event: RecordedEvent) -> None:
        """Nothing to do: the store's append already put the event on the feed every front-end follows."""

    def subscribe(self, task_id: str | None, listener: Listener) -> Callable[[], None]:
        return self._local.subscribe(task_id, listener)

    def request_cancel(self, task_id: str, reason: str) -> None:
        message = json.dumps([task_id, reason])
        asyncio.get_running_loop().create_task(self._publish_cancel(task_id, message))

    async def _publish_cancel(self, task_id: str, message: str) -> None:
        try:
            await self.redis.publish(self.names.cancel, message)
        except StoreUnavailable as exc:
            # the cancel flag is already set: the running worker finds it at its next keepalive
            log.warning("cancel signal for task %s not sent (%s)", task_id, exc)

    def on_cancel(self, listener: Callable[[str, str], None]) -> None:
        self._cancel_listeners.append(listener)

    async def _follow(self, last_id: bytes) -> None:
        backoff = Backoff("feed reader", log)
        while not self._closing:
            try:
                reply = cast(StreamRead, await self.redis.xread({self.names.feed: last_id}, count=1000, block=1000))
            except StoreUnavailable as exc:
                await backoff.failed(exc)
                continue
            backoff.succeeded()
            for _, entries in reply:
                for entry_id, fields in entries:
                    last_id = entry_id
                    self._local.publish(_event(fields))

    async def _cancels(self) -> None:
        backoff = Backoff("cancel listener", log)
        while not self._closing:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.names.cancel)
                    backoff.succeeded()
                    while not self._closing:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=CLOSE_POLL_SECONDS)
                        if message is not None and message["type"] == "message":
                            task_id, reason = json.loads(message["data"])
                            for listener in self._cancel_listeners:
                                listener(task_id, reason)
            except LOST as exc:  # pub/sub connections bypass the client's translation to StoreUnavailable
                await backoff.failed(store_error(exc))


def _event(fields: dict[bytes, bytes]) -> RecordedEvent:
    preview = preview_from_fields(fields[b"preview"], fields[b"data"]) if b"preview" in fields else None
    return event_from_fields(fields[b"task"].decode(), int(fields[b"seq"]), fields, preview)



