"""A worker: takes tasks one at a time and runs each in its own device thread.

The event loop never runs torch and the device thread never touches the network or the store:
the thread emits events into a queue that a pump coroutine records in order, so the loop stays
free for clients and the thread never waits for them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latentcast.server.engine.loader import LoadedModel
from latentcast.server.engine.previews import Previewer, make_previewer
from latentcast.server.engine.runner import Interrupted, PreviewTimer, StopSignal, run_generation
from latentcast.server.protocol.events import EventType, Preview
from latentcast.server.tasks.ports import FileStore, Job, StaleWrite
from latentcast.server.tasks.record import TaskRecord
from latentcast.server.tasks.service import TaskService

log = logging.getLogger("latentcast.worker")


class _EventPump:
    """Carries events from the device thread to the service, in the order they were emitted.

    Every write is fenced with the job's owner and attempt. If the task was taken over meanwhile
    (this worker was paused past the visibility timeout), the first refused write stops the run
    and nothing more is written: the new owner's events stay the only ones.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, service: TaskService, job: Job, stop: StopSignal) -> None:
        self._loop = loop
        self._service = service
        self._job = job
        self._stop = stop
        self._queue: asyncio.Queue[tuple[str, Any, Preview | None, float] | None] = asyncio.Queue()
        self._task = loop.create_task(self._run())
        self.stale = False
        self.last_event = time.monotonic()

    def emit(self, type_: str, message: Any, preview: Preview | None = None) -> None:
        """Called in the device thread; returns at once."""
        self._loop.call_soon_threadsafe(self._queue.put_nowait, (type_, message, preview, time.time()))

    async def _run(self) -> None:
        while (item := await self._queue.get()) is not None:
            if self.stale:
                continue
            type_, message, preview, at = item
            try:
                await self._service.emit(self._job.task_id, type_, message, at=at, preview=preview, fence=self._job.fence)
            except StaleWrite:
                self.stale = True
                self._stop.set("another worker took this task over")
                log.warning("task %s was taken over; this worker stops writing to it", self._job.task_id)
            self.last_event = time.monotonic()

    async def drain(self) -> None:
        """Wait until every event emitted so far is recorded."""
        self._queue.put_nowait(None)
        await self._task


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
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._runner: asyncio.Task[None] | None = None
        service.on_cancel(self.cancel)

    @property
    def current_task(self) -> str | None:
        return self._current[0] if self._current else None

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
        while not self._stopping:
            job, record = await self.service.next_job(self.name)
            self._idle.clear()
            try:
                await self._execute(job, record)
            finally:
                self._idle.set()

    async def _execute(self, job: Job, record: TaskRecord) -> None:
        assert self.model is not None
        loop = asyncio.get_running_loop()
        stop = StopSignal()
        self._current = (record.id, stop)
        pump = _EventPump(loop, self.service, job, stop)
        keepalive = loop.create_task(self._keepalive(job, pump, stop))
        interrupted: Interrupted | None = None
        try:
            accept = {"worker": self.name, "attempt": job.fence.attempt}
            await self.service.emit(record.id, EventType.ACCEPT, accept, fence=job.fence)
            await loop.run_in_executor(
                self._thread,
                functools.partial(
                    run_generation,
                    record,
                    self.model,
                    pump.emit,
                    stop,
                    self.files,
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
            self._current = None
        if pump.stale:
            return  # the job belongs to another worker now: neither requeue nor acknowledge it
        if interrupted is not None:
            await self.service.requeue(await self.service.get(record.id), str(interrupted))
        await self.service.job_done(job)

    async def _keepalive(self, job: Job, pump: _EventPump, stop: StopSignal) -> None:
        """While the run advances, keep the job leased; notice cancel requests a signal missed.

        A run that stops producing events (a hung device) stops renewing its lease, so another
        worker can take the task over after the visibility timeout.
        """
        while True:
            await asyncio.sleep(self.keepalive_seconds)
            if time.monotonic() - pump.last_event < 2 * self.keepalive_seconds:
                await self.service.keepalive(job)
            if not stop.is_set() and await self.service.cancel_requested(job.task_id):
                stop.set("cancelled by request")

    def _previewer(self, method: str) -> Previewer | None:
        """Previewers are built once per worker, on its device thread (taesd loads weights)."""
        if method not in self._previewers:
            assert self.model is not None
            self._previewers[method] = make_previewer(method, self.model.pipe, self.taesd_path)
        return self._previewers[method]

    def cancel(self, task_id: str, reason: str) -> None:
        if self._current is not None and self._current[0] == task_id:
            self._current[1].set(reason)

    async def shutdown(self, grace: float) -> None:
        """Let the running task finish within `grace` seconds, else stop it and queue it again."""
        self._stopping = True
        if self._current is not None:
            try:
                await asyncio.wait_for(self._idle.wait(), grace)
            except TimeoutError:
                if self._current is not None:
                    self._current[1].set("the server is shutting down", requeue=True)
                await self._idle.wait()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        self._thread.shutdown(wait=False)
