"""What crosses the channel between the API process and a worker process, one Protocol each way.

The channel names each operation by a member of these Protocols (channel.py), so each one's
name, arguments and answer are declared once, here. `ToApiProcess` is implemented on each side by
one class: `worker_side.ApiProcessProxy`, which sends each member across, and `api_side.Answers`,
which answers it. `ToWorkerProcess`, which `api_side.WorkerProcess` sends, is implemented by
`worker_side.Orders`. Async members are calls, answered in order; the others are notes, one-way.
"""

from __future__ import annotations

from typing import Protocol

from latentcast.server.tasks.worker_service import WorkerService


class ToApiProcess(WorkerService, Protocol):
    """What a worker process sends the API process that spawned it: each `WorkerService` call its
    `Worker` makes, run on the API process's own `TaskService` (so an event it records is
    published there, to every subscriber, and a job it takes moves the queue's positions there),
    and three notes."""

    def ready(self) -> None:
        """The model is loaded: the worker process can be told to start."""
        ...

    def heartbeat(self) -> None:
        """The worker process's event loop is alive; sent every `--heartbeat` seconds."""
        ...

    def preview_time(self, method: str, seconds: float) -> None:
        """How long one preview took, for the API process's /metrics."""
        ...


class ToWorkerProcess(Protocol):
    """What the API process tells a worker process it spawned, after the first message (the
    worker process's `Settings`): notes all."""

    def start(self) -> None:
        """Take tasks (once the API process has rebuilt its queue)."""
        ...

    def cancel(self, task_id: str, reason: str) -> None:
        """A cancel request for the task the worker process runs."""
        ...

    def shutdown(self) -> None:
        """Finish the running task within the grace, else stop it and queue it again; then exit."""
        ...
