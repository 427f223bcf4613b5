"""Workers of one process: building them from settings and announcing them while they live.

`latentcast serve` runs them next to the API; `latentcast worker` runs them alone against a
shared Redis backend (both wired at the top: server.app, server.cli.worker). Both announce each
worker's heartbeat (name, device, model, current task), which `GET /v1/workers` and the model
catalog read.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from latentcast.server.config import Settings
from latentcast.server.engine.loader import LoadedModel, load_pipeline
from latentcast.server.engine.runner import PreviewTimer
from latentcast.server.engine.worker import Worker
from latentcast.server.tasks.outage import Backoff, every
from latentcast.server.tasks.ports import FileStore
from latentcast.server.tasks.service import TaskService

log = logging.getLogger("latentcast.worker")

Publish = Callable[[dict[str, Any]], Awaitable[None]]
"""Publishes one worker's heartbeat where every front-end reads it (the backend's `announce`)."""


def build_workers(
    settings: Settings, service: TaskService, files: FileStore, count: int, *, time_preview: PreviewTimer
) -> list[Worker]:
    def load() -> LoadedModel:  # runs on each worker's device thread
        return load_pipeline(settings.model, data_dir=settings.data_dir, device=settings.device, dtype=settings.dtype)

    prefix = settings.worker_name or f"{socket.gethostname()}-{os.getpid()}-{settings.device}"
    return [
        Worker(
            service,
            load,
            files,
            name=f"{prefix}-{index}" if count > 1 or settings.worker_name is None else prefix,
            preview_min_interval=settings.preview_min_interval,
            time_preview=time_preview,
            taesd_path=settings.taesd,
            keepalive_seconds=settings.heartbeat_seconds,
        )
        for index in range(count)
    ]


async def announce(settings: Settings, publish: Publish, workers: list[Worker]) -> None:
    for worker in workers:
        await publish(
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


async def announce_forever(settings: Settings, publish: Publish, workers: list[Worker]) -> None:
    """Heartbeats for the process's life: a backend outage skips beats (the workers drop out of
    `/v1/workers` meanwhile) and they resume as soon as it answers again."""
    backoff = Backoff("heartbeat", log)
    await every(settings.heartbeat_seconds, lambda: announce(settings, publish, workers), backoff)
