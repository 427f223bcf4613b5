"""Workers of one process: naming and building them from settings, announcing them while they live.

`latentcast serve` runs each in a worker process of its own (server.worker_host), `latentcast
worker` runs them in its process against a shared Redis backend (both wired at the top:
server.app, server.worker_process). Either way each worker's heartbeat (name, device, model,
current task) is announced, which `GET /v1/workers` and the model catalog read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from latentcast.server.config import Settings
from latentcast.server.tasks.outage import Backoff, every
from latentcast.server.tasks.ports import FileStore
from latentcast.server.tasks.service import TaskService

if TYPE_CHECKING:
    from latentcast.server.engine.runner import PreviewTimer
    from latentcast.server.engine.worker import Worker

log = logging.getLogger("latentcast.worker")

Publish = Callable[[dict[str, Any]], Awaitable[None]]
"""Publishes one worker's heartbeat where every front-end reads it (the backend's `announce`)."""


class DeviceWorker(Protocol):
    """What the API process needs of a worker, whether a thread of its own (`Worker`) or a
    process it supervises (server.worker_host.ProcessWorker)."""

    name: str
    ready: asyncio.Event
    started_at: float

    @property
    def current_task(self) -> str | None: ...

    @property
    def live(self) -> bool:
        """Whether it gave a sign of life within `Settings.silence_limit` (a stopped or hung process did not)."""
        ...

    @property
    def last_heartbeat(self) -> float:
        """Unix time of its last sign of life."""
        ...

    @property
    def pid(self) -> int: ...

    async def load(self) -> None: ...

    def start(self) -> None: ...

    async def shutdown(self, grace: float) -> None: ...


def worker_names(settings: Settings, count: int) -> list[str]:
    prefix = settings.worker_name or f"{socket.gethostname()}-{os.getpid()}-{settings.device}"
    return [f"{prefix}-{index}" if count > 1 or settings.worker_name is None else prefix for index in range(count)]


def build_workers(
    settings: Settings, service: TaskService, files: FileStore, count: int, *, time_preview: PreviewTimer
) -> list[Worker]:
    # Imported here, not above: the API process names its workers through this module but runs
    # none of them itself, so torch and diffusers (seconds to import) stay out of it.
    from latentcast.server.engine.loader import LoadedModel, load_pipeline
    from latentcast.server.engine.worker import Worker

    def load() -> LoadedModel:  # runs on each worker's device thread
        return load_pipeline(settings.model, data_dir=settings.data_dir, device=settings.device, dtype=settings.dtype)

    return [
        Worker(
            service,
            load,
            files,
            name=name,
            preview_min_interval=settings.preview_min_interval,
            time_preview=time_preview,
            taesd_path=settings.taesd,
            keepalive_seconds=settings.heartbeat_seconds,
        )
        for name in worker_names(settings, count)
    ]


async def announce(settings: Settings, publish: Publish, workers: list[DeviceWorker]) -> None:
    for worker in workers:
        await publish(
            {
                "name": worker.name,
                "device": settings.device,
                "model": settings.model,
                "aliases": list(settings.model_aliases),
                "task": worker.current_task,
                "ready": worker.ready.is_set(),
                "live": worker.live,
                "beat_at": worker.last_heartbeat,
                "started_at": worker.started_at,
                "pid": worker.pid,
                "host": socket.gethostname(),
            }
        )


async def announce_forever(settings: Settings, publish: Publish, workers: list[DeviceWorker]) -> None:
    """Heartbeats for the process's life: a backend outage skips beats (the workers drop out of
    `/v1/workers` meanwhile) and they resume as soon as it answers again."""
    backoff = Backoff("heartbeat", log)
    await every(settings.heartbeat_seconds, lambda: announce(settings, publish, workers), backoff)
