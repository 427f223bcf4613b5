"""A worker: takes tasks one at a time and runs each in its own device thread.

The event loop never runs torch and the device thread never touches the network or the store:
the thread emits events into a queue that a pump coroutine records in order, so the loop stays
free for clients and the thread never waits for them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import itertools
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latentcast.server.engine.loader import LoadedModel
from latentcast.server.engine.previews import Previewer, make_previewer
from latentcast.server.engine.runner import Interrupted, PreviewTimer, StopSignal, run_generation
from latentcast.server.engine.thread_calls import call_soon_from_thread
from latentcast.server.protocol.events import EventType, Preview
from latentcast.server.tasks.outage import Backoff, every, until_reachable
from latentcast.server.tasks.ports import FileStore, Job, NewEvent, StaleWrite, StoreUnavailable
from latentcast.server.tasks.record import TaskRecord
from latentcast.server.tasks.service import TaskService

log = logging.getLogger("latentcast.worker")

# How long a worker told to stop waits for its stopped task to be queued again: the run stops at
# its next step, then the requeue needs the backend. Apart from the grace, which may be 0.
HANDBACK_SECONDS = 5.0
# After an unexpected failure to take a task, so that a lasting one is logged once a second, not in a spin.
TAKE_RETRY_SECONDS = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class _Output:
    name: str
    data: bytes


class _EventPump:
    """Carries events and output files from the device thread to the backend, in the order they were made.

    Every write is fenced with the job's owner and attempt. If the task was taken over meanwhile
    (this worker was paused past the visibility timeout), the first refused write stops the run
    and nothing more is written: the new owner's events and files stay the only ones.

    While the backend is unreachable (a Redis outage, a full disk), the pump retries its oldest
    write until the backend returns (the run goes on meanwhile; its writes wait in order). Each
    event carries a write id, so an append whose answer was lost is not recorded twice when it is
    sent again. Any other failure of a write is this task's: the run is stopped, nothing more is
    written, and the worker records the task as failed (`failure`) and goes on to the next.

    The events waiting when the pump wakes are written in one `emit_many`, so that their
    subscribers' senders wake once for all of them. A step's progress and its log line are emitted
    back to back and share one wake of the loop (`thread_calls`), so they are written together
    unless the loop happens to wake between the two.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, service: TaskService, files: FileStore, job: Job, stop: StopSignal
    ) -> None:
        self._loop = loop
        self._service = service
        self._files = files
        self._job = job
        self._stop = stop
        self._queue: asyncio.Queue[NewEvent | _Output | None] = asyncio.Queue()
        self._backoff = Backoff(f"task {job.task_id}: recording", log)
        self._task = loop.create_task(self._run())
        self.stale = False
        self.failure: str | None = None  # why a write failed for good: the task fails with it
        self.last_event = time.monotonic()

    def emit(self, type_: str, message: Any, preview: Preview | None = None) -> None:
        """Called in the device thread; returns at once."""
        self.last_event = time.monotonic()  # the device advances, whether or not the backend answers
        call_soon_from_thread(self._loop, self._queue.put_nowait, NewEvent(str(type_), message, time.time(), preview))

    def save(self, name: str, data: bytes) -> str:
        """Called in the device thread; returns the output's URL at once (runner.Save)."""
        call_soon_from_thread(self._loop, self._queue.put_nowait, _Output(name, data))
        return self._files.url(self._job.task_id, name)

    async def _run(self) -> None:
        fence = self._job.fence
        written = itertools.count()
        while True:
            waiting = [await self._queue.get()]
            while not self._queue.empty():
                waiting.append(self._queue.get_nowait())
            for kind, group in itertools.groupby(waiting, key=type):
                if kind is type(None):
                    return
                if kind is NewEvent:
                    await self._write([dataclasses.replace(e, write_id=f"{fence.owner}:{fence.attempt}:{n}")
                                       for e, n in zip(group, written)])
                else:
                    for output in group:
                        await self._write(output)

    async def _write(self, write: _Output | list[NewEvent]) -> None:
        if self.stale or self.failure is not None:
            return
        job = self._job
        if isinstance(write, _Output):
            call = functools.partial(self._files.write, job.task_id, write.name, write.data, job.fence)
        else:
            call = functools.partial(self._service.emit_many, job.task_id, write, fence=job.fence)
        try:
            await until_reachable(call, self._backoff)
        except StaleWrite:
            self.stale = True
            self._stop.set("another worker took this task over")
            log.warning("task %s was taken over; this worker stops writing to it", job.task_id)
        except Exception as failure:
            log.exception("task %s: a write failed; the task fails", job.task_id)
            self.failure = f"its events could not be recorded ({type(failure).__name__}: {failure})"
            self._stop.set(self.failure)

    async def drain(self) -> None:
        """Wait until every event emitted so far is recorded."""
        self._queue.put_nowait(None)
        await self._task

    def abandon(self) -> None:
        """Give up the writes still waiting for the backend (a shutdown that cannot wait any longer)."""
        self._task.cancel()


class Worker:
    def __init__(
        self,
        service: TaskService,
        load: Callable[[], LoadedModel],
        files: FileStore,
        *,
        name: str,
        preview_min_interval: float,
        time_preview: PreviewTimer,
        taesd_path: Path | None = None,
        keepalive_seconds: float = 2.0,
    ) -> None:
        self.service = service
        self.files = files
        self.preview_min_interval = preview_min_interval
        self.time_preview = time_preview
        self.keepalive_seconds = keepalive_seconds
        self.name = name
        self.taesd_path = taesd_path
        self._load = load
        # One thread per device: torch state and the pipeline stay on it for the worker's life.
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"device-{name}")
        self.model: LoadedModel | None = None
        self.started_at = time.time()
        self._previewers: dict[str, Previewer | None] = {}
        self.ready = asyncio.Event()
        self._current: tuple[str, StopSignal] | None = None
        self._pump: _EventPump | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._runner: asyncio.Task[None] | None = None
        service.on_cancel(self.cancel)

    @property
    def current_task(self) -> str | None:
        return self._current[0] if self._current else None

    @property
    def live(self) -> bool:
        """A worker in this process lives as long as the process that asks (which announces it)."""
        return True

    @property
    def last_heartbeat(self) -> float:
        return time.time()

    @property
    def pid(self) -> int:
        return os.getpid()

    async def load(self) -> None:
        """Load the model on the device thread; a model that cannot load stops the server at start."""
        self.model = await asyncio.get_running_loop().run_in_executor(self._thread, self._load)
        self.ready.set()
        log.info("worker %s ready: model %s on %s", self.name, self.model.name, self.model.device)

    def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self._run(), name=f"worker-{self.name}")

    async def _run(self) -> None:
        # A job claimed by a try whose answer was lost stays pending: it is taken over after the
        # visibility timeout, like a dead worker's.
        backoff = Backoff(f"worker {self.name}", log)
        while not self._stopping:
            try:
                job, record = await until_reachable(functools.partial(self.service.next_job, self.name), backoff)
            except Exception:
                # A task that cannot even be taken (its record unreadable) must not end the worker.
                log.exception("worker %s could not take its next task; trying again", self.name)
                await asyncio.sleep(TAKE_RETRY_SECONDS)
                continue
            self._idle.clear()
            try:
                await self._execute(job, record)
            except Exception as failure:
                # The worker outlives any task: it records the failure and takes the next one.
                log.exception("worker %s: task %s failed", self.name, record.id)
                await self._fail(job, f"the worker failed ({type(failure).__name__}: {failure})")
            finally:
                self._idle.set()

    async def _execute(self, job: Job, record: TaskRecord) -> None:
        assert self.model is not None
        loop = asyncio.get_running_loop()
        stop = StopSignal()
        self._current = (record.id, stop)
        pump = self._pump = _EventPump(loop, self.service, self.files, job, stop)
        keepalive = loop.create_task(self._keepalive(job, pump, stop))
        backoff = Backoff(f"task {record.id}", log)
        interrupted: Interrupted | None = None
        try:
            accept = functools.partial(
                self.service.emit,
                record.id,
                EventType.ACCEPT,
                {"worker": self.name, "attempt": job.fence.attempt},
                fence=job.fence,
                write_id=f"{job.fence.owner}:{job.fence.attempt}:accept",
            )
            await until_reachable(accept, backoff)
            await loop.run_in_executor(
                self._thread,
                functools.partial(
                    run_generation,
                    record,
                    self.model,
                    pump.emit,
                    stop,
                    pump.save,
                    preview_min_interval=self.preview_min_interval,
                    previewer_for=self._previewer,
                    time_preview=self.time_preview,
                ),
            )
        except Interrupted as stopped:
            interrupted = stopped
        except StaleWrite:
            pump.stale = True
        finally:
            keepalive.cancel()
            await pump.drain()
            self._current = self._pump = None
        if pump.stale:
            return  # the job belongs to another worker now: neither requeue nor acknowledge it
        if pump.failure is not None:
            await self._fail(job, pump.failure)
            return
        if interrupted is not None:
            try:
                await self.service.requeue(await self.service.get(record.id), str(interrupted))
            except StoreUnavailable:
                # Not retried: a second put of a put whose answer was lost would queue the task
                # twice. Unacknowledged, the job is taken over after the visibility timeout instead.
                log.warning("task %s not queued again (the backend did not answer); left to be taken over", record.id)
                return
        await until_reachable(functools.partial(self.service.job_done, job), backoff)

    async def _fail(self, job: Job, why: str) -> None:
        """End the job's task with a fatal `task_error` (unless it has ended already: one terminal
        event a task) and let the job go."""
        backoff = Backoff(f"task {job.task_id}", log)
        error = {"code": "internal", "message": f"task failed: {why}", "fatal": True}

        async def record() -> None:
            if not (await self.service.get(job.task_id)).status.is_final:
                await self.service.emit(job.task_id, EventType.ERROR, error, fence=job.fence,
                                        write_id=f"{job.fence.owner}:{job.fence.attempt}:failed")

        try:
            await until_reachable(record, backoff)
        except StaleWrite:
            return  # another worker owns the task now
        except Exception:
            log.exception("task %s: its failure could not be recorded either", job.task_id)
        await until_reachable(functools.partial(self.service.job_done, job), backoff)

    async def _keepalive(self, job: Job, pump: _EventPump, stop: StopSignal) -> None:
        """While the run advances, keep the job leased; notice cancel requests a signal missed.

        A run that stops producing events (a hung device) stops renewing its lease, so another
        worker can take the task over after the visibility timeout.
        """

        async def beat() -> None:
            if time.monotonic() - pump.last_event < 2 * self.keepalive_seconds:
                await self.service.keepalive(job)
            if not stop.is_set() and await self.service.cancel_requested(job.task_id):
                stop.set("cancelled by request")

        await every(self.keepalive_seconds, beat, Backoff(f"task {job.task_id}: keepalive", log))

    def _previewer(self, method: str) -> Previewer | None:
        """Previewers are built once per worker, on its device thread (taesd loads weights)."""
        if method not in self._previewers:
            assert self.model is not None
            self._previewers[method] = make_previewer(method, self.model.pipe, self.taesd_path, self.model.settings)
        return self._previewers[method]

    def cancel(self, task_id: str, reason: str) -> None:
        if self._current is not None and self._current[0] == task_id:
            self._current[1].set(reason)

    async def shutdown(self, grace: float) -> None:
        """Let the running task finish within `grace` seconds, else stop it and queue it again.

        Both need the backend. If the stopped task is not handed back within HANDBACK_SECONDS
        (the backend is unreachable), the worker leaves without it: its job stays pending, and
        another worker takes it over after the visibility timeout, as if this one had died. A
        shutdown never waits longer than `grace` + HANDBACK_SECONDS.
        """
        self._stopping = True
        if self._current is not None:
            try:
                await asyncio.wait_for(self._idle.wait(), grace)
            except TimeoutError:
                if self._current is not None:
                    self._current[1].set("the server is shutting down", requeue=True)
                try:
                    await asyncio.wait_for(self._idle.wait(), HANDBACK_SECONDS)
                except TimeoutError:
                    log.warning(
                        "worker %s leaves task %s to be taken over: the backend did not answer", self.name, self.current_task
                    )
                    if self._pump is not None:
                        self._pump.abandon()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        self._thread.shutdown(wait=False)
