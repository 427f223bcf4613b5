"""`latentcast worker`: workers in a process of their own, beside API front-ends, on a shared Redis backend.

It opens the Redis backend itself, runs `--workers` `Worker`s on its own `TaskService` and
announces their heartbeats, until SIGTERM or SIGINT: then each finishes its task within the
grace, or stops it and queues it again. (The worker processes that `latentcast serve` spawns are
server.worker_process: they reach the API process's task service through a channel instead.)
The top of the application, like server.app: it opens the backend and hands the workers its parts.
"""

from __future__ import annotations

import asyncio
import signal

from latentcast.server.backends.factory import open_backend
from latentcast.server.config import Settings
from latentcast.server.engine.fleet import announce_forever, build_workers
from latentcast.server.observability.metrics import observe_preview
from latentcast.server.tasks.catalog import ModelCatalog, ServedModel


async def run_workers(settings: Settings) -> None:
    backend = open_backend(settings, follow_feed=False)
    service = backend.task_service(ModelCatalog([ServedModel(settings.model, settings.model_aliases)]))
    workers = build_workers(settings, service, backend.files, settings.workers, time_preview=observe_preview,
                            on_cancel=service.on_cancel)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await backend.start()
    for worker in workers:
        await worker.load()
    heartbeat = asyncio.create_task(announce_forever(settings, backend.announce, workers))
    for worker in workers:
        worker.start()
    await stop.wait()
    for worker in workers:
        await worker.shutdown(settings.shutdown_grace)
    heartbeat.cancel()
    await backend.close()
