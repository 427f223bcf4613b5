"""A worker: takes tasks one at a time and runs each in its own device thread.

The event loop never runs torch and the device thread never touches the network or the store:
the thread reports into the run's event pump (server.engine.event_pump), which writes in order,
so the loop stays free for clients and the thread never waits for them. A worker needs only a
`WorkerService` of the task service, so the same worker runs in the API process, in a worker
process of its own (server.worker_process) and beside Redis (`latentcast worker`).
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

from latentcast.server.engine.event_pump import EventPump, PreviewTimer
from latentcast.server.engine.loader import LoadedModel
from latentcast.server.engine.previews import Previewer, make_previewer
from latentcast.server.engine.runner import Interrupted, StopSignal, run_generation
from latentcast.server.protocol.events import EventType
from latentcast.server.tasks.outage import Backoff, every, until_reachable
from latentcast.server.tasks.ports import FileStore, Job, StaleWrite, StoreUnavailable
from latentcast.server.tasks.record import TaskRecord
from latentcast.server.tasks.worker_service import WorkerService

log = logging.getLogger("latentcast.worker")

# How long a worker told to stop waits for its stopped task to be queued again: the run stops at
# its next step, then the requeue needs the backend. Apart from the grace, which may be 0.
HANDBACK_SECONDS = 5.0
# After an unexpected failure to take a task, so that a lasting one is logged once a second, not in a spin.
TAKE_RETRY_SECONDS = 1.0


class Worker:
    def __init__(
        self,
        service: WorkerService,
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
        self._pump: EventPump | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._runner: asyncio.Task[None] | None = None

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
        pump = self._pump = EventPump(loop, self.service, self.files, job, stop, self.time_preview)
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
            inputs = await until_reachable(functools.partial(self._inputs, record), backoff)
            await loop.run_in_executor(
                self._thread,
                functools.partial(
                    run_generation,
                    record,
                    self.model,
                    pump,
                    stop,
                    preview_min_interval=self.preview_min_interval,
                    previewer_for=self._previewer,
                    inputs=inputs,
                ),
            )
        except Interrupted as stopped:
            interrupted = stopped
        except StaleWrite:
            pump.stale = True
        finally:
            keepalive.cancel()
            await pump.finish()
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

    async def _inputs(self, record: TaskRecord) -> dict[str, bytes]:
        """The pictures the task starts from, read from its store (so a task taken over from a lost
        worker runs from the same ones)."""
        found = {name: await self.service.input(record.id, name) for name in record.inputs}
        missing = [name for name, data in found.items() if data is None]
        if missing:
            raise LookupError(f"its input {', '.join(missing)} is no longer stored")
        return {name: data for name, data in found.items() if data is not None}

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

    async def _keepalive(self, job: Job, pump: EventPump, stop: StopSignal) -> None:
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
        """A cancel request: stops the run at its next step if it is this task's (whoever builds
        the worker passes it the requests: server.engine.fleet)."""
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
