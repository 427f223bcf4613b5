"""Workers of one process: building them from settings and announcing them while they live.

`latentcast serve` runs them next to the API; `latentcast worker` runs them alone against a
shared Redis backend. Both announce each worker's heartbeat (name, device, model, current task),
which `GET /v1/workers` and the model catalog read.
"""

from __future__ import annotations

import asyncio
import os
import socket

from latentcast.server.backends.factory import Backend
from latentcast.server.config import Settings
from latentcast.server.engine.loader import LoadedModel, load_pipeline
from latentcast.server.engine.worker import Worker
from latentcast.server.tasks.service import TaskService


def build_workers(settings: Settings, service: TaskService, backend: Backend, count: int) -> list[Worker]:
    def load() -> LoadedModel:  # runs on each worker's device thread
        return load_pipeline(settings.model, data_dir=settings.data_dir, device=settings.device, dtype=settings.dtype)

    prefix = settings.worker_name or f"{socket.gethostname()}-{os.getpid()}-{settings.device}"
    return [
        Worker(
            service,
            load,
            backend.files,
            name=f"{prefix}-{index}" if count > 1 or settings.worker_name is None else prefix,
            preview_min_interval=settings.preview_min_interval,
            taesd_path=settings.taesd,
            keepalive_seconds=settings.heartbeat_seconds,
        )
        for index in range(count)
    ]


async def announce(settings: Settings, backend: Backend, workers: list[Worker]) -> None:
    for worker in workers:
        await backend.announce(
            {
                "name": worker.name,
                "device": settings.device,
                "model": settings.model,
                "aliases": list(settings.model_aliases),
                "task": worker.current_task,
                "ready": worker.ready.is_set(),
                "started_at": worker.started_at,
                "pid": os.getpid(),
                "host": socket.gethostname(),
            }
        )


async def announce_forever(settings: Settings, backend: Backend, workers: list[Worker]) -> None:
    while True:
        await announce(settings, backend, workers)
        await asyncio.sleep(settings.heartbeat_seconds)


async def run_worker_process(settings: Settings) -> None:
    """`latentcast worker`: workers on a shared backend, until SIGTERM or SIGINT."""
    import signal

    from latentcast.server.backends.factory import open_backend
    from latentcast.server.tasks.catalog import ModelCatalog, ServedModel

    backend = open_backend(settings, follow_feed=False)
    service = TaskService(
        backend.store, backend.queue, backend.bus, ModelCatalog([ServedModel(settings.model, settings.model_aliases)])
    )
    workers = build_workers(settings, service, backend, settings.workers)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await backend.start()
    for worker in workers:
        await worker.load()
    heartbeat = asyncio.create_task(announce_forever(settings, backend, workers))
    for worker in workers:
        worker.start()
    await stop.wait()
    for worker in workers:
        await worker.shutdown(settings.shutdown_grace)
    heartbeat.cancel()
    await backend.close()
