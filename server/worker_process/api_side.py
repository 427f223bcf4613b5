"""The parent's side: a worker process as the API process sees it — spawned, answered, supervised, restarted.

`latentcast serve` keeps the store, the queue and every socket, and runs each worker in a
process of its own (worker_side.py, the child), so the event loop's fan-out never holds the
interpreter lock the diffusion needs, and a worker that crashes takes no client down with it.
The child's `Worker` calls this process's `TaskService` through the channel (messages.py): what
it records is published here, to every subscriber, and a job it takes moves the queue's
positions here, at once.

If the worker process dies (kill -9, a segfault, out of memory), its task is queued again under
the usual attempt rules (`task_error` `interrupted`, as when a Redis worker's job is reclaimed or
the server restarts) and a new worker process is started. The same happens to a worker process
that stops beating (SIGSTOP, a stuck event loop) for longer than the visibility timeout: it counts
as not live in /readyz and /v1/workers once it has missed three beats, and it is killed and
replaced once its silence outlasts `--visibility-timeout`. See docs/process-model.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from latentcast.server.config import Settings
from latentcast.server.observability.metrics import observe_preview
from latentcast.server.protocol.events import Event
from latentcast.server.tasks.outage import Backoff, until_reachable
from latentcast.server.tasks.ports import Fence, Job, NewEvent
from latentcast.server.tasks.record import TaskRecord
from latentcast.server.tasks.service import TaskService
from latentcast.server.worker_process.channel import Channel
from latentcast.server.worker_process.messages import ToApiProcess, ToWorkerProcess

log = logging.getLogger("latentcast.worker")

RESPAWN_DELAY_SECONDS = 1.0  # between attempts to start a worker process whose model fails to load
# How long a worker process may take past the shutdown grace to stop its task at the next step.
SHUTDOWN_MARGIN_SECONDS = 30.0
CHILD_MODULE = "latentcast.server.worker_process.worker_side"


class WorkerExited(RuntimeError):
    """The worker process ended before its model was loaded."""


class Answers:
    """The API process's answers to one worker process (`ToApiProcess`), for that process's life.

    Each `WorkerService` call runs on this process's `TaskService`. The job the worker process
    holds is remembered from the moment the queue hands it out until the worker process lets it
    go, so that it can be queued again should that process die; its notes feed its liveness and
    the metrics.
    """

    def __init__(self, service: TaskService, loaded: Callable[[], None]) -> None:
        self._service = service
        self._loaded = loaded
        self.job: Job | None = None  # taken for the worker process and not done yet
        self.heard_at = time.monotonic()  # a new process: its silence counts from its start

    async def next_job(self, worker: str) -> tuple[Job, TaskRecord]:
        return await self._service.next_job(worker, holding=self._holding)

    def _holding(self, job: Job | None) -> None:
        self.job = job

    async def job_done(self, job: Job) -> None:
        await self._service.job_done(job)
        if self.job is not None and self.job.task_id == job.task_id:
            self.job = None

    async def get(self, task_id: str) -> TaskRecord:
        return await self._service.get(task_id)

    async def input(self, task_id: str, name: str) -> bytes | None:
        return await self._service.input(task_id, name)

    async def emit(
        self, task_id: str, type_: str, message: Any, *, fence: Fence | None = None, write_id: str | None = None
    ) -> Event:
        event = await self._service.emit(task_id, type_, message, fence=fence, write_id=write_id)
        return event.without_preview()  # the image has crossed once; nobody there reads it back

    async def emit_many(self, task_id: str, events: Sequence[NewEvent], *, fence: Fence | None = None) -> list[Event]:
        return [event.without_preview() for event in await self._service.emit_many(task_id, events, fence=fence)]

    async def keepalive(self, job: Job) -> None:
        await self._service.keepalive(job)

    async def cancel_requested(self, task_id: str) -> bool:
        return await self._service.cancel_requested(task_id)

    async def requeue(self, record: TaskRecord, why: str) -> None:
        await self._service.requeue(record, why)

    def ready(self) -> None:
        self._loaded()

    def heartbeat(self) -> None:
        self.heard_at = time.monotonic()

    def preview_time(self, method: str, seconds: float) -> None:
        observe_preview(method, seconds)


class WorkerProcess:
    """One worker in a process of its own, as the API process that spawned it holds it (a
    `WorkerHandle`): starts it, answers it, watches its heartbeats and restarts it when it dies."""

    def __init__(self, settings: Settings, service: TaskService, name: str) -> None:
        self.name = name
        self.ready = asyncio.Event()
        self.started_at = time.time()
        self._settings = dataclasses.replace(settings, worker_name=name, workers=1)
        self._service = service
        self._answers = Answers(service, self.ready.set)
        self._silenced_for: float | None = None  # set when the process was killed for its silence
        self._process: asyncio.subprocess.Process | None = None
        self._channel: Channel | None = None
        self._serving: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        service.on_cancel(self._cancel)

    @property
    def current_task(self) -> str | None:
        job = self._answers.job
        return job.task_id if job is not None else None

    @property
    def pid(self) -> int:
        return self._process.pid if self._process is not None else 0

    @property
    def live(self) -> bool:
        return self._silence() <= self._settings.silence_limit

    @property
    def last_heartbeat(self) -> float:
        return time.time() - self._silence()

    def _silence(self) -> float:
        return time.monotonic() - self._answers.heard_at

    async def load(self) -> None:
        """Start the worker process and wait until it has loaded its model (or failed to)."""
        self.ready.clear()
        self._answers = Answers(self._service, self.ready.set)
        ours, theirs = socket.socketpair()
        with theirs:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", CHILD_MODULE, str(theirs.fileno()), pass_fds=[theirs.fileno()]
            )
        self._channel = await Channel.over(ours)
        self._channel.send_first(self._settings)
        self._serving = asyncio.get_running_loop().create_task(
            self._channel.serve(self._answers, ToApiProcess, concurrent={ToApiProcess.next_job})
        )
        loaded = asyncio.get_running_loop().create_task(self.ready.wait())
        await asyncio.wait([loaded, self._serving], return_when=asyncio.FIRST_COMPLETED)
        if not self.ready.is_set():
            loaded.cancel()
            raise WorkerExited(f"worker {self.name} exited ({_describe(await self._process.wait())}) before its model loaded")
        self.started_at = time.time()
        log.info("worker %s ready in process %d", self.name, self._process.pid)

    def start(self) -> None:
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(), name=f"supervise-{self.name}")

    async def _supervise(self) -> None:
        assert self._channel is not None
        self._channel.note(ToWorkerProcess.start)
        watch = asyncio.get_running_loop().create_task(self._kill_when_silent())
        try:
            await self._supervise_processes()
        finally:
            watch.cancel()

    async def _kill_when_silent(self) -> None:
        """A process silent past the visibility timeout is stopped or stuck: it gets no more time.
        Killed, it is reclaimed and replaced by `_supervise_processes` like one that died."""
        limit = self._settings.visibility_timeout
        while True:
            await asyncio.sleep(self._settings.heartbeat_seconds)
            process = self._process
            silence = self._silence()
            # (A process still loading is not watched: it beats only once its imports are done.)
            if process is not None and process.returncode is None and self.ready.is_set() and silence > limit:
                log.error("worker %s: its process %d sent no heartbeat for %.1f s (stopped or stuck); killing it",
                          self.name, process.pid, silence)
                self._silenced_for = silence
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                self._answers.heard_at = time.monotonic()  # once per silence: the new process has its own

    async def _supervise_processes(self) -> None:
        while True:
            assert self._serving is not None and self._process is not None
            await self._serving  # answers the worker process until it is gone
            code = await self._process.wait()
            try:
                await self._reclaim(code)
            except Exception:  # the supervisor outlives any one process, whatever became of its task
                log.exception("worker %s: its task could not be reclaimed", self.name)
            if self._stopping:
                return
            log.error("worker %s: its process %s; starting a new one", self.name, _describe(code))
            await self._respawn()

    async def _respawn(self) -> None:
        while not self._stopping:
            try:
                await self.load()
            except WorkerExited as failure:
                log.error("%s; trying again", failure)
                await asyncio.sleep(RESPAWN_DELAY_SECONDS)
                continue
            assert self._channel is not None
            self._channel.note(ToWorkerProcess.shutdown if self._stopping else ToWorkerProcess.start)
            return

    async def _reclaim(self, code: int) -> None:
        """The worker process is gone: its unfinished task goes back to the queue (or fails),
        once the store can record it (a full disk is waited out)."""
        job, self._answers.job = self._answers.job, None
        silenced_for, self._silenced_for = self._silenced_for, None
        if job is None:
            return
        if silenced_for is not None:
            why = f"worker {self.name} stopped responding (no heartbeat for {silenced_for:.0f} s)"
        else:
            why = f"worker {self.name} died ({_describe(code)})"

        async def requeue() -> None:
            await self._service.job_done(job)  # (a Redis queue would otherwise hand the old entry out again)
            record = await self._service.get(job.task_id)
            if not record.status.is_final:
                await self._service.requeue(record, why)

        await until_reachable(requeue, Backoff(f"worker {self.name}: re-queueing task {job.task_id}", log))

    async def shutdown(self, grace: float) -> None:
        """Let the running task finish within `grace` seconds, else stop it and queue it again."""
        self._stopping = True
        if self._channel is not None:
            self._channel.note(ToWorkerProcess.shutdown)
        if self._supervisor is None:  # loaded, never started: nothing to finish
            if self._process is not None and self._process.returncode is None:
                self._process.kill()
                await self._process.wait()
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._supervisor), grace + SHUTDOWN_MARGIN_SECONDS)
        except TimeoutError:
            log.error("worker %s did not stop in time; killing it", self.name)
            if self._process is not None:
                with contextlib.suppress(ProcessLookupError):
                    self._process.kill()
            await self._supervisor

    def _cancel(self, task_id: str, reason: str) -> None:
        if self._channel is not None and task_id == self.current_task:
            self._channel.note(ToWorkerProcess.cancel, task_id, reason)


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"
