"""Workers of one process: naming and building them from settings, announcing them while they live.

`latentcast serve` runs each in a worker process of its own (server.worker_process), `latentcast
worker` runs them in its process against a shared Redis backend (server.worker_command), and
`serve --worker-threads` in the API process itself. Either way each worker's heartbeat (name,
device, model, current task) is announced, which `GET /v1/workers` and the model catalog read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from latentcast.server.config import Settings
from latentcast.server.tasks.outage import Backoff, every
from latentcast.server.tasks.ports import FileStore
from latentcast.server.tasks.worker_service import WorkerService

if TYPE_CHECKING:
    from latentcast.server.engine.event_pump import PreviewTimer
    from latentcast.server.engine.worker import Worker

log = logging.getLogger("latentcast.worker")

Publish = Callable[[dict[str, Any]], Awaitable[None]]
"""Publishes one worker's heartbeat where every front-end reads it (the backend's `announce`)."""
CancelListener = Callable[[str, str], None]
"""Hears a cancel request: (task id, reason)."""


class WorkerHandle(Protocol):
    """What a process that runs workers holds of each: a `Worker` in that process, or, in the API
    process, a worker process it spawned and supervises (server.worker_process.api_side)."""

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
    settings: Settings,
    service: WorkerService,
    files: FileStore,
    count: int,
    *,
    time_preview: PreviewTimer,
    on_cancel: Callable[[CancelListener], None],
) -> list[Worker]:
    """`count` workers of this process; `on_cancel` registers each worker's `cancel` with where
    cancel requests come from (`TaskService.on_cancel`, or the worker process's channel)."""
    # Imported here, not above: the API process names its workers through this module but runs
    # none of them itself, so torch and diffusers (seconds to import) stay out of it.
    from latentcast.server.engine.loader import LoadedModel, load_pipeline
    from latentcast.server.engine.worker import Worker

    def load() -> LoadedModel:  # runs on each worker's device thread
        return load_pipeline(settings.model, data_dir=settings.data_dir, device=settings.device, dtype=settings.dtype)

    workers = [
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
    for worker in workers:
        on_cancel(worker.cancel)
    return workers


async def announce(settings: Settings, publish: Publish, workers: Sequence[WorkerHandle]) -> None:
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


async def announce_forever(settings: Settings, publish: Publish, workers: Sequence[WorkerHandle]) -> None:
    """Heartbeats for the process's life: a backend outage skips beats (the workers drop out of
    `/v1/workers` meanwhile) and they resume as soon as it answers again."""
    backoff = Backoff("heartbeat", log)
    await every(settings.heartbeat_seconds, lambda: announce(settings, publish, workers), backoff)
