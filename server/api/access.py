"""Who may read or change a task.

- Its token (>= 128 random bits, compared in constant time) reads that one task: its detail,
  events and files. Nothing else: not other tasks, not lists, not cancelling.
- An API key reads and cancels the tasks it created; an admin key every task. Another key's task
  is "not found", exactly like a task that does not exist, so a key cannot learn that it exists.
- On a server without keys anyone may do anything, as before keys existed (a token, when given,
  must still be the task's).
"""

from __future__ import annotations

import asyncio
import hmac

from starlette.requests import HTTPConnection

from latentcast.server.api.context import context
from latentcast.server.errors import RequestRefused
from latentcast.server.protocol.events import RecordedEvent
from latentcast.server.security.auth import Caller, credentials, unauthorized
from latentcast.server.tasks.ports import Listener
from latentcast.server.tasks.record import TaskRecord
from latentcast.server.tasks.service import TaskNotFound, TaskService


def given_token(connection: HTTPConnection) -> str | None:
    return connection.query_params.get("token") or connection.headers.get("x-task-token")


def check_token(record: TaskRecord, token: str | None) -> None:
    """A token, when given, must be this task's; without API keys configured none is required."""
    if token is not None and not hmac.compare_digest(token.encode(), record.token.encode()):
        raise RequestRefused(403, "forbidden", "the token does not match this task")


def no_task(task_id: str) -> RequestRefused:
    return RequestRefused(404, "not_found", f"no task {task_id!r}")


def check_access(record: TaskRecord, token: str | None, caller: Caller | None) -> None:
    """Refuse unless the given token is the task's and the caller (when one must be) sees it."""
    check_token(record, token)
    if caller is not None and not caller.sees(record):
        raise no_task(record.id)


async def identify(connection: HTTPConnection) -> Caller | None:
    """Who sent this request (None: no key, on a server with keys); a 401 for a bad key.

    Once per request: a signed (Wiro) request uses its nonce up.
    """
    if "latentcast.caller" not in connection.scope:
        caller = await context(connection).keys.identify(credentials(connection.headers))
        connection.scope["latentcast.caller"] = caller
    return connection.scope["latentcast.caller"]


async def require_key(connection: HTTPConnection) -> Caller:
    caller = await identify(connection)
    if caller is None:
        raise unauthorized("an API key is required (Authorization: Bearer KEY, or x-api-key: KEY)")
    return caller


class OwnEvents:
    """A listener of every task's events that passes on only the tasks `caller` sees (its
    `subscribe_all` when it is not an admin). Events carry no owner: each task's record is read
    once, its events held meanwhile so their order is kept, and forgotten after its last event."""

    def __init__(self, service: TaskService, caller: Caller, deliver: Listener) -> None:
        self.service = service
        self.caller = caller
        self.deliver = deliver
        self.visible: dict[str, bool] = {}
        self.held: dict[str, list[RecordedEvent]] = {}
        self.lookups: set[asyncio.Task[None]] = set()

    def __call__(self, event: RecordedEvent) -> None:
        visible = self.visible.get(event.task_id)
        if visible is None:
            if event.task_id not in self.held:
                lookup = asyncio.create_task(self._look_up(event.task_id))
                self.lookups.add(lookup)
                lookup.add_done_callback(self.lookups.discard)
            self.held.setdefault(event.task_id, []).append(event)
            return
        if visible:
            self.deliver(event)
        if event.terminal:
            self.visible.pop(event.task_id, None)

    async def _look_up(self, task_id: str) -> None:
        try:
            self.visible[task_id] = self.caller.sees(await self.service.get(task_id))
        except TaskNotFound:
            self.visible[task_id] = False
        for event in self.held.pop(task_id, []):
            self(event)

    def close(self) -> None:
        for lookup in self.lookups:
            lookup.cancel()
