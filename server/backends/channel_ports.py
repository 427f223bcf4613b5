"""The ports as a worker process sees them: thin proxies that call the API process over a `Channel`.

A worker process of `latentcast serve` runs the same `TaskService` and `Worker` as `latentcast
worker` does on Redis; only the ports differ. Here each store and queue method is one call to
the API process, which answers it from its own SQLite store and memory queue (`port_handlers`).
As with Redis, recording an event is what publishes it: the API process's append hands it to its
own subscribers, so `ChannelBus.publish` has nothing left to do, and cancel requests come back as
notes (`CANCEL`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from latentcast.server.backends.channel import Channel, Handler
from latentcast.server.backends.local_bus import LocalBus
from latentcast.server.protocol.events import Event, Preview, TaskStatus
from latentcast.server.tasks.ports import Fence, Job, JobQueue, NewEvent, Page, TaskStore
from latentcast.server.tasks.record import TaskRecord

# Notes between the API process and a worker process, besides the ports' calls.
CANCEL = "cancel"  # API -> worker: (task_id, reason), a cancel request for the running task
START = "start"  # API -> worker: take tasks (once the API process has rebuilt its queue)
SHUTDOWN = "shutdown"  # API -> worker: finish the running task within the grace, or re-queue it
READY = "ready"  # worker -> API: the model is loaded
PREVIEW_TIME = "preview_time"  # worker -> API: (method, seconds) of one preview, for /metrics
HEARTBEAT = "heartbeat"  # worker -> API: its event loop is alive (every `heartbeat_seconds`)
STORE_OPS = (
    "create", "get", "get_by_token", "list", "append", "append_many", "events", "set_cancel_requested", "unfinished",
    "check", "delete", "expired",
)
QUEUE_OPS = ("put", "take", "keepalive", "done", "remove", "position", "length", "moved")


class ChannelStore:
    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    async def create(self, record: TaskRecord) -> None:
        await self._channel.call("store.create", record)

    async def get(self, task_id: str) -> TaskRecord | None:
        return await self._channel.call("store.get", task_id)

    async def get_by_token(self, token: str) -> TaskRecord | None:
        return await self._channel.call("store.get_by_token", token)

    async def list(
        self, *, status: TaskStatus | None, limit: int, cursor: str | None, owner: str | None
    ) -> Page:
        return await self._channel.call("store.list", status=status, limit=limit, cursor=cursor, owner=owner)

    async def append(
        self,
        task_id: str,
        type_: str,
        message: Any,
        *,
        time: float,
        preview: Preview | None = None,
        fence: Fence | None = None,
        write_id: str | None = None,
    ) -> Event:
        return await self._channel.call(
            "store.append", task_id, type_, message, time=time, preview=preview, fence=fence, write_id=write_id
        )

    async def append_many(self, task_id: str, events: Sequence[NewEvent], *, fence: Fence | None = None) -> list[Event]:
        return await self._channel.call("store.append_many", task_id, events, fence=fence)

    async def events(self, task_id: str, since: int = 0, *, limit: int | None = None) -> list[Event]:
        return await self._channel.call("store.events", task_id, since, limit=limit)

    async def set_cancel_requested(self, task_id: str) -> None:
        await self._channel.call("store.set_cancel_requested", task_id)

    async def unfinished(self) -> list[TaskRecord]:
        return await self._channel.call("store.unfinished")

    async def check(self) -> None:
        await self._channel.call("store.check")

    async def delete(self, task_id: str) -> None:
        await self._channel.call("store.delete", task_id)

    async def expired(self, before: float, limit: int) -> list[str]:
        return await self._channel.call("store.expired", before, limit)

    async def close(self) -> None:
        """The store belongs to the API process: closing the worker's view of it closes nothing."""


class ChannelQueue:
    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    async def put(self, task_id: str, attempts: int = 0) -> int:
        return await self._channel.call("queue.put", task_id, attempts)

    async def take(self, worker: str) -> Job:
        return await self._channel.call("queue.take", worker)

    async def keepalive(self, job: Job) -> None:
        await self._channel.call("queue.keepalive", job)

    async def done(self, job: Job) -> None:
        await self._channel.call("queue.done", job)

    async def remove(self, task_id: str) -> bool:
        return await self._channel.call("queue.remove", task_id)

    async def position(self, task_id: str) -> int | None:
        return await self._channel.call("queue.position", task_id)

    async def length(self) -> int:
        return await self._channel.call("queue.length")

    async def moved(self) -> list[tuple[str, int]]:
        return await self._channel.call("queue.moved")


class ChannelBus(LocalBus):
    """The worker process's bus: cancel requests arrive as notes; its own events it never publishes."""

    def publish(self, event: Event) -> None:
        """Nothing to do: the API process published the event when it recorded it."""


def port_handlers(store: TaskStore, queue: JobQueue, append: Handler, append_many: Handler) -> dict[str, Handler]:
    """The API process's side: each proxied op answered by its real port; the appends record and publish."""
    handlers: dict[str, Handler] = {f"store.{op}": getattr(store, op) for op in STORE_OPS}
    handlers.update({f"queue.{op}": getattr(queue, op) for op in QUEUE_OPS})
    handlers["store.append"] = append
    handlers["store.append_many"] = append_many
    return handlers
