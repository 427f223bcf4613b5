"""The ports of the task domain: what the service and the engine need from storage, the queue, the
live feed and output files, as interfaces. The backends (server.backends) implement them, in one
process (SQLite, memory) or across many (Redis); nothing here knows which one runs.
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from latentcast.server.protocol.events import EncodedPreview, RecordedEvent, TaskStatus
from latentcast.server.tasks.outbox import Backlog, Claim, Delivery, Outcome
from latentcast.server.tasks.record import TaskRecord

Listener = Callable[[RecordedEvent], None]


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    items: list[TaskRecord]
    next_cursor: str | None


class StaleWrite(Exception):
    """A worker wrote to a task it no longer owns (it was reclaimed by another worker meanwhile)."""


class StoreUnavailable(Exception):
    """The shared backend (Redis) cannot be reached now: nothing was decided, the call may be retried.

    Backends raise it instead of their client library's errors, so that the API can answer 503
    and the workers can wait for the backend to return without knowing which backend runs.
    """


class StoreBusy(StoreUnavailable):
    """The shared backend answers, but every connection this process may open to it stayed in use
    for as long as a call may wait for one: an overload of this process, not an outage. Nothing was
    decided, the call may be retried; whatever retries or answers 503 for an outage does so for
    this too, and says "busy" where it would say "unreachable".
    """


@dataclasses.dataclass(frozen=True, slots=True)
class Fence:
    """Who may write a running task's events: the worker that claimed it, for that attempt."""

    owner: str
    attempt: int


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """A task a worker has taken from the queue.

    `reclaimed` is true when the task was taken over from a worker that stopped responding;
    `handle` is the backend's own reference (a stream entry id in Redis).
    """

    task_id: str
    fence: Fence
    reclaimed: bool = False
    handle: Any = None


@dataclasses.dataclass(frozen=True, slots=True)
class NewEvent:
    """One event for `TaskStore.append_many`: what `append` takes, as a value."""

    type: str
    message: Any
    time: float
    preview: EncodedPreview | None = None
    write_id: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # A worker process sends every step's events across its channel: a slots dataclass
        # pickles through dataclasses' Python-level state functions otherwise, a third of what
        # its event loop spent a step.
        return NewEvent, (self.type, self.message, self.time, self.preview, self.write_id)


class EventLog(Protocol):
    """Reading tasks' event logs: all a subscriber's replay needs of the store (protocol.subscriber)."""

    async def events(self, task_id: str, since: int = 0, *, limit: int | None = None) -> list[RecordedEvent]:
        """Events after `since` (the first `limit` of them), in order; only the newest preview of
        the whole log keeps its image."""
        ...


class TaskStore(EventLog, Protocol):
    """Task records and their event logs; appending an event also folds it into the record."""

    async def create(self, record: TaskRecord, inputs: Mapping[str, bytes] | None = None) -> None:
        """Make the task known, with the pictures it starts from (`record.inputs` names them); its
        first event follows at once (`TaskService.submit`). A store may keep the record until that
        event and write both together, so that a submission whose first event fails leaves no task
        behind (SQLite does). The inputs live and go with the task, like its events."""
        ...

    async def input(self, task_id: str, name: str) -> bytes | None:
        """One of the task's input pictures ("image", "mask"), as `create` was given it."""
        ...

    async def save_upload(self, upload_id: str, data: bytes, *, expires_in: float) -> None:
        """Keep an uploaded picture for `expires_in` seconds, for tasks to name by its id."""
        ...

    async def upload(self, upload_id: str) -> bytes | None:
        """An upload's bytes, None when there is none (never made, or expired)."""
        ...

    async def get(self, task_id: str) -> TaskRecord | None: ...

    async def get_by_token(self, token: str) -> TaskRecord | None: ...

    # (below this method, a class body's `list` is the method: annotations say `builtins.list`)
    async def list(
        self, *, status: TaskStatus | None, limit: int, cursor: str | None, owner: str | None
    ) -> Page: ...

    async def append(
        self,
        task_id: str,
        type_: str,
        message: Any,
        *,
        time: float,
        preview: EncodedPreview | None = None,
        fence: Fence | None = None,
        write_id: str | None = None,
    ) -> RecordedEvent:
        """Record the task's next event (seq = last + 1) and return it.

        With a `fence`, the write is refused with `StaleWrite` unless that worker still owns that
        attempt of the task. `write_id` names the write: a caller that lost the answer (the
        backend went away) sends the same write again with the same id, and a store that already
        recorded it returns that event instead of recording it twice.
        """
        ...

    async def append_many(
        self, task_id: str, events: Sequence[NewEvent], *, fence: Fence | None = None
    ) -> builtins.list[RecordedEvent]:
        """Record `events` in order, each as `append` would: one call for the events a worker has
        waiting, so that subscribers are woken once for them. A store may make it one round trip
        or leave it to `append_each`."""
        ...

    async def set_cancel_requested(self, task_id: str) -> None: ...

    async def unfinished(self) -> builtins.list[TaskRecord]:
        """Tasks not in a final status, oldest first: what a restart must pick up."""
        ...

    async def check(self) -> None:
        """Raise `StoreUnavailable` if a new task could not be recorded to its end now (the disk
        under SQLite is full); asked before a task is created, and by /readyz."""
        ...

    async def delete(self, task_id: str) -> None:
        """Remove a task: its record, its event log and its newest preview (its token then opens
        nothing). The caller checks that the task has ended."""
        ...

    async def expired(self, before: float, limit: int) -> builtins.list[str]:
        """Up to `limit` ended tasks created before `before` (Unix time), oldest first: what the
        retention sweep removes. A store whose records expire by themselves (Redis) returns none."""
        ...

    async def close(self) -> None: ...


async def append_each(
    store: TaskStore, task_id: str, events: Sequence[NewEvent], fence: Fence | None
) -> list[RecordedEvent]:
    """`append_many` as one `append` per event: for a store that gains nothing from doing it at once."""
    return [
        await store.append(task_id, e.type, e.message, time=e.time, preview=e.preview, fence=fence, write_id=e.write_id)
        for e in events
    ]


class Outbox(Protocol):
    """The webhook deliveries a `TaskStore` writes with their events (server.tasks.outbox), for
    the senders of every API process to claim, send and settle."""

    async def claim(
        self, *, now: float, limit: int, lease_until: float, per_host: int, busy: dict[str, int]
    ) -> list[Claim]:
        """Up to `limit` deliveries due by `now`, each its task's head, claimed until `lease_until`:
        no other claim gets them before then unless they are settled. A host with `per_host`
        deliveries in flight (`busy` counts this sender's) gets no more."""
        ...

    async def settle(self, claim: Claim, outcome: Outcome) -> bool:
        """Record the attempt's outcome; a delivery that ends makes its task's next one due at once.
        False (and nothing recorded) when the claim lapsed and another sender holds it now."""
        ...

    async def of_task(self, task_id: str) -> list[Delivery]:
        """The task's deliveries, in seq order."""
        ...

    async def recent(self, *, limit: int, owner: str | None) -> list[Delivery]:
        """The newest deliveries of all tasks (only `owner`'s, unless None), newest first."""
        ...

    async def backlog(self) -> Backlog: ...


class JobQueue(Protocol):
    """FIFO of queued task ids; the order gives each task its queue position."""

    async def put(self, task_id: str, attempts: int = 0) -> int:
        """Queue a task that has had `attempts` runs so far; returns its 1-based position."""
        ...

    async def take(self, worker: str) -> Job:
        """Wait for the first task and claim it for `worker` (the claim moves the task's fence)."""
        ...

    async def keepalive(self, job: Job) -> None:
        """Tell the queue the job's worker is alive and advancing, so the job is not reclaimed."""
        ...

    async def done(self, job: Job) -> None:
        """The job ended (whatever its outcome); it will not be handed out again."""
        ...

    async def remove(self, task_id: str) -> bool:
        """Take a queued task out (cancel); False when it is not waiting (a worker has it)."""
        ...

    async def position(self, task_id: str) -> int | None: ...

    async def length(self) -> int: ...

    async def moved(self) -> list[tuple[str, int]]:
        """Waiting tasks whose position changed since last asked, with their new positions."""
        ...


class EventBus(Protocol):
    """The live feed: events as they are recorded, and cancel requests for running tasks."""

    def publish(self, event: RecordedEvent) -> None: ...

    def subscribe(self, task_id: str | None, listener: Listener) -> Callable[[], None]:
        """Listen to one task (or every task, with None); returns the unsubscribe function."""
        ...

    def request_cancel(self, task_id: str, reason: str) -> None: ...

    def on_cancel(self, listener: Callable[[str, str], None]) -> None:
        """`listener(task_id, reason)` for every cancel request of a running task."""
        ...


class FileStore(Protocol):
    """Output files: a worker's event pump writes them, `GET /v1/files` reads them."""

    public_url: str

    def url(self, task_id: str, name: str) -> str:
        """Where clients download the output `name` of the task."""
        ...

    async def write(self, task_id: str, name: str, data: bytes, fence: Fence) -> None:
        """Store one output, refused with `StaleWrite` unless `fence` still owns the task: a worker
        that lost its task must not overwrite the new owner's files."""
        ...

    async def read(self, task_id: str, name: str) -> bytes | None: ...

    async def delete(self, task_id: str) -> None:
        """Remove every output of the task (none is fine)."""
        ...
