"""Webhooks as an outbox: which events of a task become deliveries, and what a delivery is.

A task that asks for a webhook (`POST /v1/tasks` with `webhook`, Wiro's `callbackUrl`) keeps its
`Webhook` (server/tasks/webhook.py) in its record. Each event the store appends is offered to
`plan_delivery`; when it returns a delivery, the store writes it in the same write as the event
(one SQLite transaction, one Redis script), so no crash can keep an event and lose its delivery.
The API processes send what is written (server.deliveries), in each task's seq order: a task's
next delivery waits until the one before it is delivered or given up (it is the task's "head"
until then).

No I/O here: the stores and the sender share these rules and values.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import TYPE_CHECKING, Any, Literal

from latentcast.wire import EventType

if TYPE_CHECKING:
    from latentcast.server.protocol.events import RecordedEvent
    from latentcast.server.tasks.record import TaskRecord

# `task_progress` goes out at most once a second per task, and always for the last step.
PROGRESS_INTERVAL_SECONDS = 1.0

State = Literal["pending", "delivered", "failed"]


def delivery_id(task_id: str, seq: int) -> str:
    """The `webhook-id` of the delivery of one event: the same on every attempt, and if a dead
    front-end's delivery is sent again by another, so a receiver can drop repeats."""
    return f"msg_{task_id}_{seq}"


def host_of(url: str) -> str:
    """The receiver a delivery goes to, as the bound on concurrent deliveries counts them."""
    return urllib.parse.urlsplit(url).netloc.lower()


@dataclasses.dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery to write with the event that causes it."""

    id: str
    task_id: str
    seq: int
    type: str
    url: str
    format: str
    owner: str | None
    host: str
    created_at: float


def plan_delivery(record: TaskRecord, event: RecordedEvent) -> NewDelivery | None:
    """The delivery `event` causes, if the task's webhook asks for it (called with the record the
    event was just folded into). A planned `task_progress` is noted in the record, which holds
    back the next one for PROGRESS_INTERVAL_SECONDS, unless that one is the last step."""
    hook = record.webhook
    if hook is None or event.type not in hook.events:
        return None
    if event.type == EventType.ERROR and not event.terminal:
        return None
    if event.type == EventType.PROGRESS:
        message = event.message if isinstance(event.message, dict) else {}
        last_step = message.get("step") is not None and message.get("step") == message.get("steps")
        if not last_step and event.time - record.webhook_progress_at < PROGRESS_INTERVAL_SECONDS:
            return None
        record.webhook_progress_at = event.time
    return NewDelivery(
        id=delivery_id(record.id, event.seq),
        task_id=record.id,
        seq=event.seq,
        type=event.type,
        url=hook.url,
        format=hook.format,
        owner=record.owner,
        host=host_of(hook.url),
        created_at=event.time,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Claim(NewDelivery):
    """A delivery one sender holds until its claim lapses: no other sends it meanwhile. `lease`
    names the claim; a result reported under a claim that has lapsed (another sender took the
    delivery over) is not recorded. `attempts`: those made before this one."""

    attempts: int
    lease: str


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt settled: `delivered` (a 2xx), `retry` at `at`, or `failed` for good.
    `status` is the receiver's HTTP status, when it answered; `error` says what went wrong."""

    state: Literal["delivered", "retry", "failed"]
    at: float  # when it was delivered or given up; for a retry, when the next attempt is due
    status: int | None = None
    error: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery as `GET /v1/tasks/{id}/deliveries` shows it."""

    id: str
    task_id: str
    seq: int
    type: str
    state: State
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: float | None  # while pending and its task's head; None while an earlier one waits
    done_at: float | None  # when it was delivered, or given up
    created_at: float

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task_id": self.task_id,
            "seq": self.seq,
            "event": self.type,
            "state": self.state,
            "attempts": self.attempts,
            "last_status_code": self.last_status,
            "last_error": self.last_error,
            "next_attempt_at": self.next_attempt_at if self.state == "pending" else None,
            "delivered_at": self.done_at if self.state == "delivered" else None,
            "failed_at": self.done_at if self.state == "failed" else None,
            "created_at": self.created_at,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Backlog:
    """The deliveries not yet delivered nor given up, everywhere: how many, and since when."""

    pending: int
    oldest_created_at: float | None
