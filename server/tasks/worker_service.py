"""What a worker needs of the task service: the few calls that take a task, record its run and let it go.

`TaskService` is one; so is the worker process's proxy of the API process's `TaskService`
(server.worker_process), which sends each of these calls over its channel. Naming them here, and
nothing else, is what lets the engine's `Worker` run unchanged in the API process, in a worker
process of its own and beside Redis, and what the channel between the two processes may carry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from latentcast.server.protocol.events import Event
from latentcast.server.tasks.ports import Fence, Job, NewEvent
from latentcast.server.tasks.record import TaskRecord


class WorkerService(Protocol):
    async def next_job(self, worker: str) -> tuple[Job, TaskRecord]:
        """Wait for the next task this worker should run, and claim it."""
        ...

    async def get(self, task_id: str) -> TaskRecord:
        """The task's record; `TaskNotFound` when there is none."""
        ...

    async def input(self, task_id: str, name: str) -> bytes | None:
        """One of the task's input pictures ("image", "mask"), None when it has none."""
        ...

    async def emit(
        self, task_id: str, type_: str, message: Any, *, fence: Fence | None = None, write_id: str | None = None
    ) -> Event:
        """Record the task's next event and hand it to its subscribers."""
        ...

    async def emit_many(self, task_id: str, events: Sequence[NewEvent], *, fence: Fence | None = None) -> list[Event]:
        """Record several events at once, then hand them to their subscribers together."""
        ...

    async def keepalive(self, job: Job) -> None:
        """The job's worker is alive and advancing: the job is not to be taken over."""
        ...

    async def cancel_requested(self, task_id: str) -> bool:
        """Whether someone asked to cancel the task (a check in case the request was missed)."""
        ...

    async def requeue(self, record: TaskRecord, why: str) -> None:
        """Put an interrupted task back in the queue, or fail it once it has had its attempts."""
        ...

    async def job_done(self, job: Job) -> None:
        """The job ended, whatever its outcome: it is not handed out again."""
        ...
