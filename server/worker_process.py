"""Worker processes: `latentcast worker` on a shared Redis backend, and the ones `latentcast serve` spawns.

Both run the same `TaskService` and `Worker`s; only the ports differ. `latentcast worker` opens
the Redis backend itself and runs until SIGTERM or SIGINT. A worker process of `serve` (started
by server.worker_host as `python -m latentcast.server.worker_process FD`) gets its settings and
every store and queue call over the channel on descriptor FD, and lives as long as the API
process that started it: it stops when told (`SHUTDOWN`, finishing or re-queueing its task as
`latentcast worker` does on SIGTERM) and exits at once if the API process is gone.
The top of the application, like server.app: it opens the backend and hands the workers its parts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING

from latentcast.server.backends.channel import Channel
from latentcast.server.backends.channel_ports import (
    CANCEL,
    HEARTBEAT,
    PREVIEW_TIME,
    READY,
    SHUTDOWN,
    START,
    ChannelBus,
    ChannelQueue,
    ChannelStore,
)
from latentcast.server.backends.factory import open_backend, open_files
from latentcast.server.config import Settings
from latentcast.server.engine.fleet import announce_forever, build_workers
from latentcast.server.engine.thread_calls import call_soon_from_thread
from latentcast.server.observability import configure_logging
from latentcast.server.observability.metrics import observe_preview
from latentcast.server.tasks.catalog import ModelCatalog, ServedModel
from latentcast.server.tasks.service import TaskService

if TYPE_CHECKING:
    from latentcast.server.engine.worker import Worker

def _catalog(settings: Settings) -> ModelCatalog:
    return ModelCatalog([ServedModel(settings.model, settings.model_aliases)])


async def _work(workers: list[Worker], stop: asyncio.Event, grace: float) -> None:
    for worker in workers:
        worker.start()
    await stop.wait()
    for worker in workers:
        await worker.shutdown(grace)


async def run_worker_process(settings: Settings) -> None:
    backend = open_backend(settings, follow_feed=False)
    service = backend.task_service(_catalog(settings))
    workers = build_workers(settings, service, backend.files, settings.workers, time_preview=observe_preview)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await backend.start()
    for worker in workers:
        await worker.load()
    heartbeat = asyncio.create_task(announce_forever(settings, backend.announce, workers))
    await _work(workers, stop, settings.shutdown_grace)
    heartbeat.cancel()
    await backend.close()


async def run_channel_worker(fd: int) -> None:
    """One worker of `latentcast serve`, in this process, over the channel on descriptor `fd`."""
    # A terminal's Ctrl-C and a service manager's SIGTERM reach the whole process group, this
    # process too: the API process decides what stops, and says so with SHUTDOWN.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    channel = await Channel.over(socket.socket(fileno=fd))
    settings: Settings = await channel.first()
    configure_logging(settings.log_format, progress=False)
    bus = ChannelBus()
    files = open_files(settings)
    service = TaskService(ChannelStore(channel), ChannelQueue(channel), bus, files, _catalog(settings))
    loop = asyncio.get_running_loop()

    def time_preview(method: str, seconds: float) -> None:  # on the device thread: the loop writes
        call_soon_from_thread(loop, channel.note, PREVIEW_TIME, method, seconds)

    workers = build_workers(settings, service, files, 1, time_preview=time_preview)
    started, stop = asyncio.Event(), asyncio.Event()
    serving = loop.create_task(channel.serve({CANCEL: bus.request_cancel, START: started.set, SHUTDOWN: stop.set}))

    def parent_gone(_: object) -> None:
        # Nobody records this worker's events or waits for its result any more, and a run in the
        # device thread cannot be stopped mid-op: the process ends at once.
        os._exit(1)

    serving.add_done_callback(parent_gone)
    heartbeat = loop.create_task(_beat(channel, settings.heartbeat_seconds))
    for worker in workers:
        await worker.load()
    channel.note(READY)
    await asyncio.wait([loop.create_task(started.wait()), loop.create_task(stop.wait())], return_when="FIRST_COMPLETED")
    if not stop.is_set():
        await _work(workers, stop, settings.shutdown_grace)
    heartbeat.cancel()
    serving.remove_done_callback(parent_gone)  # stopped as asked: the exit is a clean one


async def _beat(channel: Channel, seconds: float) -> None:
    """Tell the API process this process is alive, from its event loop: beats stop when the
    process is stopped (SIGSTOP) or its loop is stuck, and the API process replaces it then
    (server.worker_host). A diffusion step in the device thread does not stop them."""
    while True:
        channel.note(HEARTBEAT)
        await asyncio.sleep(seconds)


def main(argv: list[str]) -> int:
    from latentcast.server.engine.loader import quiet_libraries

    quiet_libraries()
    asyncio.run(run_channel_worker(int(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
