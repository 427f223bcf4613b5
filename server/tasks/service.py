"""The task service: the one place where tasks are created, moved through their lifecycle and cancelled.

HTTP handlers (native and compatibility), WebSocket commands and workers all go through it, so
every task, whichever door it came in by, gets the same events, the same queue and the same
records. It knows the backend only through the ports in `server.tasks.ports`, so it runs
unchanged in one process (SQLite) and across many (Redis), and it is the only way to them: its
store, queue and bus are its own, and everything else asks it.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from latentcast.server.protocol.events import EncodedPreview, EventType, RecordedEvent, TaskStatus
from latentcast.server.tasks.catalog import ModelCatalog
from latentcast.server.tasks.input_images import TaskInputs
from latentcast.server.tasks.outage import Backoff, until_reachable
from latentcast.server.tasks.outbox import Backlog, Delivery
from latentcast.server.tasks.params import TaskParams
from latentcast.server.tasks.ports import (
    EventBus,
    Fence,
    FileStore,
    Job,
    JobQueue,
    Listener,
    NewEvent,
    Outbox,
    Page,
    TaskStore,
)
from latentcast.server.tasks.record import TaskRecord
from latentcast.server.tasks.shared_pages import SharedPages
from latentcast.server.tasks.webhook import Webhook

log = logging.getLogger("latentcast.server")

# A task interrupted by this many restarts or worker losses is failed instead of run again.
MAX_ATTEMPTS = 3
# How long an upload no task has copied may be named by tasks: a task keeps its own copy.
UPLOAD_SECONDS = 3600
# How often queue positions are recomputed when other processes change the queue too (Redis).
POSITION_POLL_SECONDS = 0.5


class TaskNotFound(LookupError):
    pass


class TaskNotFinished(Exception):
    """The task has not ended; only an ended task can be deleted."""

    def __init__(self, record: TaskRecord) -> None:
        super().__init__(f"task {record.id} is {record.status}; cancel it, or wait for it to end, before deleting it")
        self.record = record


class TaskFinished(Exception):
    """The task already ended; it can no longer be cancelled."""

    def __init__(self, record: TaskRecord) -> None:
        super().__init__(f"task {record.id} already ended with status {record.status}")
        self.record = record


def new_task_id() -> str:
    return secrets.token_hex(8)


def new_token() -> str:
    # 192 random bits: a capability for one task's detail, events and files. Hex, because a
    # URL-safe base64 token starts with "-" one time in 64 and then reads as an option to any
    # command line it is pasted into (`latentcast watch ID --token -x...`).
    return secrets.token_hex(24)


class TaskService:
    def __init__(
        self, store: TaskStore, queue: JobQueue, bus: EventBus, files: FileStore, catalog: ModelCatalog,
        outbox: Outbox | None = None,
    ) -> None:
        self._store = store
        self._outbox = outbox  # the webhook deliveries the store writes (none in a worker process)
        self._pages = SharedPages(store)  # what many subscribers ask for at once is read once
        self._queue = queue
        self._bus = bus
        self._files = files
        self.catalog = catalog
        self._positions_changed = asyncio.Event()

    # -- creating and reading -------------------------------------------------------------

    async def submit(
        self, params: TaskParams, *, owner: str | None = None, webhook: Webhook | None = None,
        inputs: TaskInputs | None = None,
    ) -> TaskRecord:
        """Record a new task, with the pictures it starts from, and queue it. `params` must already
        be valid (the model resolvable). Refused with `StoreUnavailable` (503), before anything is
        written, while the store could not record the task to its end (a full disk)."""
        model = self.catalog.resolve(params.model)
        await self._store.check()
        seed = params.seed if params.seed is not None else secrets.randbelow(2**32)
        record = TaskRecord(
            id=new_task_id(),
            token=new_token(),
            params=params,
            model=model,
            seed=seed,
            created_at=time.time(),
            owner=owner,
            webhook=webhook,
        )
        pictures = inputs.named() if inputs is not None else {}
        record.inputs = list(pictures)
        await self._store.create(record, pictures)
        await self._enqueue(record)
        return await self.get(record.id)

    async def input(self, task_id: str, name: str) -> bytes | None:
        """One of the task's input pictures ("image", "mask"): what a worker runs from."""
        return await self._store.input(task_id, name)

    async def save_upload(self, data: bytes) -> str:
        """Keep an uploaded picture for UPLOAD_SECONDS; returns its id (tasks name it to use it)."""
        upload_id = f"up_{secrets.token_hex(16)}"
        await self._store.save_upload(upload_id, data, expires_in=UPLOAD_SECONDS)
        return upload_id

    async def upload(self, upload_id: str) -> bytes | None:
        return await self._store.upload(upload_id)

    async def get(self, task_id: str) -> TaskRecord:
        record = await self._store.get(task_id)
        if record is None:
            raise TaskNotFound(task_id)
        return record

    async def list(
        self, *, status: TaskStatus | None = None, limit: int = 50, cursor: str | None = None, owner: str | None = None
    ) -> Page:
        return await self._store.list(status=status, limit=limit, cursor=cursor, owner=owner)

    async def get_by_token(self, token: str) -> TaskRecord:
        """The task this token opens (tokens are compared by the store's index, not one by one)."""
        record = await self._store.get_by_token(token)
        if record is None:
            raise TaskNotFound("no task has this token")  # (not the token: it is a secret)
        return record

    async def events(self, task_id: str, since: int = 0, *, limit: int | None = None) -> builtins.list[RecordedEvent]:
        """The task's recorded events after `since` (the first `limit`), in order (only the newest
        preview keeps its image)."""
        return await self._store.events(task_id, since, limit=limit)

    async def deliveries(self, task_id: str) -> builtins.list[Delivery]:
        """The task's webhook deliveries, in seq order."""
        return await self._deliveries().of_task(task_id)

    async def recent_deliveries(self, *, limit: int, owner: str | None = None) -> builtins.list[Delivery]:
        """The newest webhook deliveries of every task (of `owner`'s tasks only, when given)."""
        return await self._deliveries().recent(limit=limit, owner=owner)

    async def delivery_backlog(self) -> Backlog:
        """How many deliveries wait, everywhere, and since when."""
        return await self._deliveries().backlog()

    def _deliveries(self) -> Outbox:
        if self._outbox is None:
            raise RuntimeError("this process keeps no webhook deliveries")
        return self._outbox

    async def unfinished(self) -> builtins.list[TaskRecord]:
        return await self._store.unfinished()

    async def check(self) -> None:
        """Raise `StoreUnavailable` if a new task could not be recorded to its end now."""
        await self._store.check()

    async def position(self, task_id: str) -> int | None:
        """1-based queue position, or None when the task is not waiting."""
        return await self._queue.position(task_id)

    async def queue_length(self) -> int:
        return await self._queue.length()

    # -- following ------------------------------------------------------------------------

    async def replay_page(self, task_id: str, since: int, *, limit: int) -> builtins.list[RecordedEvent]:
        """A page of the task's log for a subscriber's replay (protocol.subscriber): the same page
        asked for by many subscribers at once is read once for all of them (`SharedPages`)."""
        return await self._pages.events(task_id, since, limit=limit)

    def subscribe(self, task_id: str | None, listener: Listener) -> Callable[[], None]:
        """Live events of one task (or of every task, with None) as they are recorded, wherever;
        returns the unsubscribe function. No replay: `replay_page` reads the log."""
        return self._bus.subscribe(task_id, listener)

    # -- lifecycle --------------------------------------------------------------------------

    async def emit(
        self,
        task_id: str,
        type_: str,
        message: Any,
        *,
        at: float | None = None,
        preview: EncodedPreview | None = None,
        fence: Fence | None = None,
        write_id: str | None = None,
    ) -> RecordedEvent:
        """Record the task's next event and hand it to live subscribers (`write_id`: TaskStore.append)."""
        at = time.time() if at is None else at
        event = await self._store.append(
            task_id, str(type_), message, time=at, preview=preview, fence=fence, write_id=write_id
        )
        self._bus.publish(event)
        return event

    async def emit_many(
        self, task_id: str, events: Sequence[NewEvent], *, fence: Fence | None = None
    ) -> builtins.list[RecordedEvent]:
        """Record several events at once, then hand them to live subscribers together: a socket's
        sender wakes once for all of them, not once for each."""
        recorded = await self._store.append_many(task_id, events, fence=fence)
        for event in recorded:
            self._bus.publish(event)
        return recorded

    async def next_job(
        self, worker: str, *, holding: Callable[[Job | None], None] = lambda job: None
    ) -> tuple[Job, TaskRecord]:
        """Wait for the next task this worker should run, and claim it.

        `holding` hears which job the worker holds: each job the moment the queue hands it out,
        before anything else is awaited, and None when a job is let go here (its task had ended,
        or was cancelled while queued). Whoever takes jobs for a worker in another process
        (server.worker_process) knows the job from then on, to queue it again should that process die.
        """
        while True:
            job = await self._queue.take(worker)
            holding(job)
            self._positions_changed.set()  # every waiting task moved up: announced at once
            record = await self._store.get(job.task_id)
            if record is not None and await self._runnable(job, record):
                return job, record
            await self._queue.done(job)
            holding(None)

    async def _runnable(self, job: Job, record: TaskRecord) -> bool:
        """Whether a job just taken is to run: not when its task ended or was cancelled while
        queued, nor when it was taken over once too often (its log says so, fenced by the job)."""
        if record.status.is_final:
            return False
        if record.cancel_requested:
            await self.emit(job.task_id, EventType.CANCEL, {"reason": "cancelled while queued"}, fence=job.fence)
            return False
        if job.reclaimed:
            why = f"worker {record.worker} stopped responding"
            if job.fence.attempt > MAX_ATTEMPTS:
                await self._give_up(record, why, fence=job.fence)
                return False
            await self._interrupted(job.task_id, why, fence=job.fence)
            # Back in the queue, as a restarted single process puts it, and at its head: taken at once.
            length = await self._queue.length()
            await self.emit(job.task_id, EventType.QUEUE, {"position": 1, "queue_length": length + 1}, fence=job.fence)
        return True

    async def cancel(self, task_id: str, reason: str = "cancelled by request") -> TaskRecord:
        """Cancel a task: a queued one never starts; a running one stops at its next step."""
        record = await self.get(task_id)
        if record.status.is_final:
            raise TaskFinished(record)
        await self._store.set_cancel_requested(task_id)
        if await self._queue.remove(task_id):
            self._positions_changed.set()
            await self.emit(task_id, EventType.CANCEL, {"reason": reason})
        else:
            self._bus.request_cancel(task_id, reason)
        return await self.get(task_id)

    async def delete(self, task_id: str) -> None:
        """Remove an ended task with its events and files; its id and token then open nothing."""
        record = await self.get(task_id)
        if not record.status.is_final:
            raise TaskNotFinished(record)
        await self._remove(task_id)

    async def delete_expired(self, retention: float, *, batch: int = 100) -> int:
        """Remove the ended tasks created more than `retention` seconds ago; how many went. (On
        Redis none: its keys expire by themselves.)"""
        removed = 0
        while expired := await self._store.expired(time.time() - retention, batch):
            for task_id in expired:
                await self._remove(task_id)
            removed += len(expired)
        return removed

    async def _remove(self, task_id: str) -> None:
        # Files first: should the store fail after them, the task is still there to delete again.
        await self._files.delete(task_id)
        await self._store.delete(task_id)

    async def cancel_requested(self, task_id: str) -> bool:
        """Whether someone asked to cancel the task (a worker checks in case it missed the signal)."""
        record = await self._store.get(task_id)
        return record is not None and record.cancel_requested

    def on_cancel(self, listener: Callable[[str, str], None]) -> None:
        """`listener(task_id, reason)` for every cancel request of a running task, wherever it runs."""
        self._bus.on_cancel(listener)

    async def keepalive(self, job: Job) -> None:
        """The job's worker is alive and advancing: the job is not to be taken over."""
        await self._queue.keepalive(job)

    async def job_done(self, job: Job) -> None:
        """The job ended, whatever its outcome: it is not handed out again."""
        await self._queue.done(job)

    async def requeue(self, record: TaskRecord, why: str) -> None:
        """Put an interrupted task back in the queue, or fail it once it has had its attempts."""
        if record.attempt >= MAX_ATTEMPTS:
            await self._give_up(record, why)
            return
        await self._interrupted(record.id, why)
        await self._enqueue(record)

    async def _interrupted(self, task_id: str, why: str, fence: Fence | None = None) -> None:
        # The same words in every mode: the task_queue that follows says it is queued again.
        await self.emit(task_id, EventType.ERROR, {"code": "interrupted", "message": f"{why}; queued again"}, fence=fence)

    async def _give_up(self, record: TaskRecord, why: str, fence: Fence | None = None) -> None:
        message = {"code": "interrupted", "message": f"{why}; gave up after {record.attempt} attempts", "fatal": True}
        await self.emit(record.id, EventType.ERROR, message, fence=fence)

    async def recover(self) -> None:
        """After a restart of the single-process server: queued tasks wait again in order,
        interrupted ones are re-queued or failed. (A Redis queue survives restarts by itself.)"""
        for record in await self._store.unfinished():
            if record.status is not TaskStatus.QUEUED:
                await self.requeue(record, "the server stopped while this task was running")
            elif record.cancel_requested:
                await self.emit(record.id, EventType.CANCEL, {"reason": "cancelled while queued"})
            else:
                await self._queue.put(record.id, record.attempt)
        self._positions_changed.set()

    # -- queue positions --------------------------------------------------------------------

    async def _enqueue(self, record: TaskRecord) -> None:
        # task_queue is recorded before a worker can see the task, so it always precedes task_accept.
        length = await self._queue.length()
        await self.emit(record.id, EventType.QUEUE, {"position": length + 1, "queue_length": length + 1})
        await self._queue.put(record.id, record.attempt)
        self._positions_changed.set()

    async def announce_positions(self, *, shared_queue: bool) -> None:
        """Send `task_queue` to every waiting task whose position changed; runs for the server's life.

        Every change made through this service (a submission, a take, a cancel, a requeue) wakes
        it at once, and changes are coalesced: a burst of departures costs one pass, not one pass
        each. A `shared_queue` (Redis) also changes in other processes, which wake nothing here:
        positions are then re-checked every POSITION_POLL_SECONDS as well.
        """
        backoff = Backoff("queue positions", log)
        poll = POSITION_POLL_SECONDS if shared_queue else None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._positions_changed.wait(), poll)
            self._positions_changed.clear()
            # A backend outage skips passes, not the loop: positions are announced again after it.
            await until_reachable(self._announce_moved, backoff)
            await asyncio.sleep(0.05)

    async def _announce_moved(self) -> None:
        moved = await self._queue.moved()
        if moved:
            length = await self._queue.length()
            for task_id, position in moved:
                with contextlib.suppress(KeyError):
                    await self.emit(task_id, EventType.QUEUE, {"position": position, "queue_length": length})
