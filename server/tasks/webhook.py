"""What a task asks of its webhook: where its events go, which of them, and in whose body shape.

Kept in the task's record (server/tasks/record.py); server/tasks/outbox.py turns the events it asks
for into deliveries.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from latentcast.wire import EventType

# Without `webhook_events`: the one event that ends the task, whichever it is. A `task_error` is
# delivered only when it ends the task (fatal): its warnings and interruptions stay on the stream.
TERMINAL_EVENTS: tuple[str, ...] = (EventType.POSTPROCESS_END, EventType.CANCEL, EventType.ERROR)

# How the body of a delivery is made: the stream's event (`native`) or a door's provider's shape.
Format = Literal["native", "wiro"]


@dataclasses.dataclass(frozen=True, slots=True)
class Webhook:
    """Where a task's events go, which of them, and in whose body shape."""

    url: str
    events: tuple[str, ...] = TERMINAL_EVENTS
    format: Format = "native"

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Webhook:
        return cls(fields["url"], tuple(fields["events"]), fields["format"])
