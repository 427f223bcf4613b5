"""The body of a native delivery: the event itself, as the task's stream carries it (no preview).

A receiver parses it as it parses an event from the socket or the SSE stream (docs/protocol.md):
`{"type", "id", "seq", "time", "message"}`.
"""

from __future__ import annotations

import orjson

from latentcast.server.tasks.outbox import Claim
from latentcast.server.tasks.service import TaskService


async def event_body(service: TaskService, claim: Claim) -> bytes | None:
    events = await service.events(claim.task_id, claim.seq - 1, limit=1)
    if not events or events[0].seq != claim.seq:
        return None
    return orjson.dumps(events[0].envelope("none"))
