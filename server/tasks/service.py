"""The task service: the one place where tasks are created, moved through their lifecycle and cancelled.

HTTP handlers (native and compatibility), WebSocket commands and workers all go through it, so
every task, whichever door it came in by, gets the same events, the same queue and the same
records. It knows the backend only through the interfaces in `server.backends.base`, so it runs
unchanged in one process (SQLite) and across many (Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import Any

from latentcast.server.backends.base import EventBus, Fence, Job, JobQueue, Page, TaskStore
from latentcast.server.protocol.events import Event, EventType, Preview, TaskStatus
from latentcast.server.tasks.catalog import ModelCatalog
from latentcast.server.tasks.params import TaskParams
from latentcast.server.tasks.record import TaskRecord

# A task interrupted by this many restarts or worker losses is failed instead of run again.
MAX_ATTEMPTS = 3
# How often queue positions are recomputed when changes may come from other processes.
POSITION_POLL_SECONDS = 0.5


class TaskNotFound(LookupError):
    pass


class TaskFinished(Exception):
    """The task already ended; it can no longer be cancelled."""

    def __init__(self, record: TaskRecord) -> None:
        super().__init__(f"task {record.id} already ended with status {record.status}")
        self.record = record


def new_task_id() -> str:
    return secrets.token_hex(8)


def new_token() -> str:
    # 192 random bits, URL-safe: a capability for one task's detail, events and files.
    return secrets.token_urlsafe(24)


class TaskService:
    def __init__(self, store: TaskStore, queue: JobQueue, bus: EventBus, catalog: ModelCatalog) -> None:
        self.store = store
        self.queue = queue
        self.bus = bus
        self.catalog = catalog
        self._positions_changed = asyncio.Event()

    # -- creating and reading -------------------------------------------------------------

    async def submit(
        self, params: TaskParams, *, owner: str | None = None, callback_url: str | None = None
    ) -> TaskRecord:
        """Record a new task and queue it. `params` must already be valid (the model resolvable)."""
        model = self.catalog.resolve(params.model)
        seed = params.seed if params.seed is not None else secrets.randbelow(2**32)
        record = TaskRecord(
            id=new_task_id(),
            token=new_token(),
            params=params.model_dump(),
            model=model,
            seed=seed,
            created_at=time.time(),
            owner=owner,
            callback_url=callback_url,
        )
        await self.store.create(record)
        await self._enqueue(record)
        return await self.get(record.id)

    async def get(self, task_id: str) -> TaskRecord:
        record = await self.store.get(task_id)
        if record is None:
            raise TaskNotFound(task_id)
        return record

    async def list(
        self, *, status: TaskStatus | None = None, limit: int = 50, cursor: str | None = None, owner: str | None = None
    ) -> Page:
        return await self.store.list(status=status, limit=limit, cursor=cursor, owner=owner)

    async def position(self, task_id: str) -> int | None:
        """1-based queue position, or None when the task is not waiting."""
        return await self.queue.position(task_id)

    # -- lifecycle --------------------------------------------------------------------------

    async def emit(
        self,
        task_id: str,
        type_: str,
        message: Any,
        *,
        at: float | None = None,
        preview: Preview | None = None,
        fence: Fence | None = None,
    ) -> Event:
        """Record the task's next event and hand it to live subscribers."""
        at = time.time() if at is None else at
        event = await self.store.append(task_id, str(type_), message, time=at, preview=preview, fence=fence)
        self.bus.publish(event)
        return event

    async def next_job(self, worker: str) -> tuple[Job, TaskRecord]:
        """Wait for the next task this worker should run, and claim it."""
        while True:
            job = await self.queue.take(worker)
            self._positions_changed.set()
            record = await self.store.get(job.task_id)
            if record is None or record.status.is_final:
                await self.queue.done(job)
                continue
            if record.cancel_requested:
                await self.emit(job.task_id, EventType.CANCEL, {"reason": "cancelled while queued"}, fence=job.fence)
                await self.queue.done(job)
                continue
            if job.reclaimed:
                why = f"worker {record.worker} stopped responding"
                if job.fence.attempt > MAX_ATTEMPTS:
                    await self._give_up(record, why, fence=job.fence)
                    await self.queue.done(job)
                    continue
                await self.emit(
                    job.task_id, EventType.ERROR, {"code": "interrupted", "message": f"{why}; running again"}, fence=job.fence
                )
            return job, record

    async def cancel(self, task_id: str, reason: str = "cancelled by request") -> TaskRecord:
        """Cancel a task: a queued one never starts; a running one stops at its next step."""
        record = await self.get(task_id)
        if record.status.is_final:
            raise TaskFinished(record)
        await self.store.set_cancel_requested(task_id)
        if await self.queue.remove(task_id):
            self._positions_changed.set()
            await self.emit(task_id, EventType.CANCEL, {"reason": reason})
        else:
            self.bus.request_cancel(task_id, reason)
        return await self.get(task_id)

    async def requeue(self, record: TaskRecord, why: str) -> None:
        """Put an interrupted task back in the queue, or fail it once it has had its attempts."""
        if record.attempt >= MAX_ATTEMPTS:
            await self._give_up(record, why)
            return
        await self.emit(record.id, EventType.ERROR, {"code": "interrupted", "message": f"{why}; queued again"})
        await self._enqueue(record)

    async def _give_up(self, record: TaskRecord, why: str, fence: Fence | None = None) -> None:
        message = {"code": "interrupted", "message": f"{why}; gave up after {record.attempt} attempts", "fatal": True}
        await self.emit(record.id, EventType.ERROR, message, fence=fence)

    async def recover(self) -> None:
        """After a restart of the single-process server: queued tasks wait again in order,
        interrupted ones are re-queued or failed. (A Redis queue survives restarts by itself.)"""
        for record in await self.store.unfinished():
            if record.status is not TaskStatus.QUEUED:
                await self.requeue(record, "the server stopped while this task was running")
            elif record.cancel_requested:
                await self.emit(record.id, EventType.CANCEL, {"reason": "cancelled while queued"})
            else:
                await self.queue.put(record.id, record.attempt)
        self._positions_changed.set()

    # -- queue positions --------------------------------------------------------------------

    async def _enqueue(self, record: TaskRecord) -> None:
        # task_queue is recorded before a worker can see the task, so it always precedes task_accept.
        length = await self.queue.length()
        await self.emit(record.id, EventType.QUEUE, {"position": length + 1, "queue_length": length + 1})
        await self.queue.put(record.id, record.attempt)
        self._positions_changed.set()

    async def announce_positions(self) -> None:
        """Send `task_queue` to every waiting task whose position changed; runs for the server's life.

        Changes are coalesced: a burst of departures costs one pass, not one pass each. The
        queue also changes in other processes (Redis), so positions are re-checked periodically.
        """
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._positions_changed.wait(), POSITION_POLL_SECONDS)
            self._positions_changed.clear()
            moved = await self.queue.moved()
            if moved:
                length = await self.queue.length()
                for task_id, position in moved:
                    with contextlib.suppress(KeyError):
                        await self.emit(task_id, EventType.QUEUE, {"position": position, "queue_length": length})
            await asyncio.sleep(0.05)
