"""The API process's side of a worker process: spawning it, answering it, restarting it when it dies.

`latentcast serve` keeps the store, the queue and every socket, and runs each device worker in a
process of its own (server.worker_process), so the event loop's fan-out never holds the
interpreter lock the diffusion needs, and a worker that crashes takes no client down with it.
The worker process calls this one's store and queue through a channel (backends.channel_ports);
what it appends is recorded and published here, to every subscriber, as its own events.

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

from latentcast.server.backends.channel import Channel, Handler
from latentcast.server.backends.channel_ports import (
    CANCEL,
    HEARTBEAT,
    PREVIEW_TIME,
    READY,
    SHUTDOWN,
    START,
    port_handlers,
)
from latentcast.server.backends.factory import Backend
from latentcast.server.config import Settings
from latentcast.server.observability.metrics import observe_preview
from latentcast.server.protocol.events import Event, Preview
from latentcast.server.tasks.outage import Backoff, until_reachable
from latentcast.server.tasks.ports import Fence, Job, NewEvent
from latentcast.server.tasks.service import TaskService

log = logging.getLogger("latentcast.worker")

RESPAWN_DELAY_SECONDS = 1.0  # between attempts to start a worker process whose model fails to load
# How long a worker process may take past the shutdown grace to stop its task at the next step.
SHUTDOWN_MARGIN_SECONDS = 30.0


class WorkerExited(RuntimeError):
    """The worker process ended before its model was loaded."""


class ProcessWorker:
    """One device worker in a worker process, as the API process supervises it (a `DeviceWorker`)."""

    def __init__(self, settings: Settings, backend: Backend, service: TaskService, name: str) -> None:
        self.name = name
        self.ready = asyncio.Event()
        self.started_at = time.time()
        self._settings = dataclasses.replace(settings, worker_name=name, workers=1)
        self._service = service
        self._queue = backend.queue
        self._handlers: dict[str, Handler] = {
            **port_handlers(backend.store, backend.queue, self._append, self._append_many),
            "queue.take": self._take,
            "queue.done": self._done,
            READY: self.ready.set,
            PREVIEW_TIME: observe_preview,
            HEARTBEAT: self._heard,
        }
        self._heard_at = time.monotonic()
        self._silenced_for: float | None = None  # set when the process was killed for its silence
        self._job: Job | None = None  # taken by the worker process and not done yet
        self._process: asyncio.subprocess.Process | None = None
        self._channel: Channel | None = None
        self._serving: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        service.on_cancel(self._cancel)

    @property
    def current_task(self) -> str | None:
        return self._job.task_id if self._job is not None else None

    @property
    def pid(self) -> int:
        return self._process.pid if self._process is not None else 0

    @property
    def live(self) -> bool:
        return self._silence() <= self._settings.silence_limit

    @property
    def last_heartbeat(self) -> float:
        return time.time() - self._silence()

    def _heard(self) -> None:
        self._heard_at = time.monotonic()

    def _silence(self) -> float:
        return time.monotonic() - self._heard_at

    async def load(self) -> None:
        """Start the worker process and wait until it has loaded its model (or failed to)."""
        self.ready.clear()
        ours, theirs = socket.socketpair()
        self._heard_at = time.monotonic()  # a new process: its silence counts from its start
        with theirs:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "latentcast.server.worker_process", str(theirs.fileno()), pass_fds=[theirs.fileno()]
            )
        self._channel = await Channel.over(ours)
        self._channel.send_first(self._settings)
        self._serving = asyncio.get_running_loop().create_task(
            self._channel.serve(self._handlers, concurrent={"queue.take"})
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
        self._channel.note(START)
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
                self._heard_at = time.monotonic()  # once per silence: the new process has its own

    async def _supervise_processes(self) -> None:
        while True:
            assert self._serving is not None and self._process is not None
            await self._serving  # answers the worker process until it is gone
            code = await self._process.wait()
            await self._reclaim(code)
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
            self._channel.note(SHUTDOWN if self._stopping else START)
            return

    async def _reclaim(self, code: int) -> None:
        """The worker process is gone: its unfinished task goes back to the queue (or fails),
        once the store can record it (a full disk is waited out)."""
        job, self._job = self._job, None
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
            self._channel.note(SHUTDOWN)
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

    # -- the worker process's calls that this side keeps track of ---------------------------

    async def _take(self, worker: str) -> Job:
        job = await self._queue.take(worker)
        self._job = job  # before the answer is sent: should the process die now, the job is reclaimed
        return job

    async def _done(self, job: Job) -> None:
        await self._queue.done(job)
        if self._job is not None and self._job.task_id == job.task_id:
            self._job = None

    async def _append(
        self,
        task_id: str,
        type_: str,
        message: object,
        *,
        time: float,
        preview: Preview | None = None,
        fence: Fence | None = None,
        write_id: str | None = None,
    ) -> Event:
        event = await self._service.emit(
            task_id, type_, message, at=time, preview=preview, fence=fence, write_id=write_id
        )
        return event.without_preview()  # the image has crossed once; nobody there reads it back

    async def _append_many(self, task_id: str, events: list[NewEvent], *, fence: Fence | None = None) -> list[Event]:
        recorded = await self._service.emit_many(task_id, events, fence=fence)
        return [event.without_preview() for event in recorded]

    def _cancel(self, task_id: str, reason: str) -> None:
        if self._channel is not None and task_id == self.current_task:
            self._channel.note(CANCEL, task_id, reason)


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"
