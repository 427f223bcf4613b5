"""The child's side: a worker process of `latentcast serve`, over the channel its parent, the API process, gave it.

Started by api_side.WorkerProcess as `python -m latentcast.server.worker_process.worker_side FD`.
It gets its `Settings` as the channel's first message (on descriptor FD), loads the model, and
runs one `Worker`, whose every `WorkerService` call goes to the API process's `TaskService`
through `ApiProcessProxy`; it writes its output files itself. It lives as long as the API process:
it stops when told (`shutdown`, finishing or re-queueing its task as `latentcast worker` does on
SIGTERM) and exits at once if the API process is gone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from latentcast.server.backends.factory import open_files
from latentcast.server.config import Settings
from latentcast.server.engine.fleet import CancelListener, build_workers
from latentcast.server.observability import configure_logging
from latentcast.server.protocol.events import Event
from latentcast.server.tasks.ports import Fence, Job, NewEvent
from latentcast.server.tasks.record import TaskRecord
from latentcast.server.worker_process.channel import Channel
from latentcast.server.worker_process.messages import ToApiProcess, ToWorkerProcess


class ApiProcessProxy:
    """`ToApiProcess` in the worker process: each member sent to the API process over the channel."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    async def next_job(self, worker: str) -> tuple[Job, TaskRecord]:
        return await self._channel.call(ToApiProcess.next_job, worker)

    async def get(self, task_id: str) -> TaskRecord:
        return await self._channel.call(ToApiProcess.get, task_id)

    async def input(self, task_id: str, name: str) -> bytes | None:
        return await self._channel.call(ToApiProcess.input, task_id, name)

    async def emit(
        self, task_id: str, type_: str, message: Any, *, fence: Fence | None = None, write_id: str | None = None
    ) -> Event:
        return await self._channel.call(ToApiProcess.emit, task_id, type_, message, fence=fence, write_id=write_id)

    async def emit_many(self, task_id: str, events: Sequence[NewEvent], *, fence: Fence | None = None) -> list[Event]:
        return await self._channel.call(ToApiProcess.emit_many, task_id, events, fence=fence)

    async def keepalive(self, job: Job) -> None:
        await self._channel.call(ToApiProcess.keepalive, job)

    async def cancel_requested(self, task_id: str) -> bool:
        return await self._channel.call(ToApiProcess.cancel_requested, task_id)

    async def requeue(self, record: TaskRecord, why: str) -> None:
        await self._channel.call(ToApiProcess.requeue, record, why)

    async def job_done(self, job: Job) -> None:
        await self._channel.call(ToApiProcess.job_done, job)

    def ready(self) -> None:
        self._channel.note(ToApiProcess.ready)

    def heartbeat(self) -> None:
        self._channel.note(ToApiProcess.heartbeat)

    def preview_time(self, method: str, seconds: float) -> None:
        self._channel.note(ToApiProcess.preview_time, method, seconds)


class Orders:
    """`ToWorkerProcess` in the worker process: what the API process tells it, kept for `run` to obey."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.stopping = asyncio.Event()
        self._cancel_listeners: list[CancelListener] = []

    def start(self) -> None:
        self.started.set()

    def cancel(self, task_id: str, reason: str) -> None:
        for listener in self._cancel_listeners:
            listener(task_id, reason)

    def shutdown(self) -> None:
        self.stopping.set()

    def on_cancel(self, listener: CancelListener) -> None:
        """(Not an order: how this process's worker hears the `cancel` ones.)"""
        self._cancel_listeners.append(listener)


async def run(fd: int) -> None:
    """One worker of `latentcast serve`, in this process, over the channel on descriptor `fd`."""
    # A terminal's Ctrl-C and a service manager's SIGTERM reach the whole process group, this
    # process too: the API process decides what stops, and says so with `shutdown`.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    channel = await Channel.over(socket.socket(fileno=fd))
    settings: Settings = await channel.first()
    configure_logging(settings.log_format, progress=False)
    api = ApiProcessProxy(channel)
    orders = Orders()
    [worker] = build_workers(settings, api, open_files(settings), 1, time_preview=api.preview_time,
                             on_cancel=orders.on_cancel)
    loop = asyncio.get_running_loop()
    serving = loop.create_task(channel.serve(orders, ToWorkerProcess))

    def parent_gone(_: object) -> None:
        # Nobody records this worker's events or waits for its result any more, and a run in the
        # device thread cannot be stopped mid-op: the process ends at once.
        os._exit(1)

    serving.add_done_callback(parent_gone)
    heartbeat = loop.create_task(_beat(api, settings.heartbeat_seconds))
    await worker.load()
    api.ready()
    await asyncio.wait([loop.create_task(orders.started.wait()), loop.create_task(orders.stopping.wait())],
                       return_when=asyncio.FIRST_COMPLETED)
    if not orders.stopping.is_set():
        worker.start()
        await orders.stopping.wait()
        await worker.shutdown(settings.shutdown_grace)
    heartbeat.cancel()
    serving.remove_done_callback(parent_gone)  # stopped as asked: the exit is a clean one


async def _beat(api: ApiProcessProxy, seconds: float) -> None:
    """Tell the API process this process is alive, from its event loop: beats stop when the
    process is stopped (SIGSTOP) or its loop is stuck, and the API process replaces it then
    (api_side.WorkerProcess). A diffusion step in the device thread does not stop them."""
    while True:
        api.heartbeat()
        await asyncio.sleep(seconds)


def main(argv: list[str]) -> int:
    from latentcast.server.engine.loader import quiet_libraries

    quiet_libraries()
    asyncio.run(run(int(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
