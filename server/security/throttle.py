"""Applying the per-caller limits of `server.security.ratelimit`: requests per minute and tasks in
flight, each a 429 with Retry-After.

The caller is the API key a request carries when keys are in use (its own `rate_per_minute` and
`max_in_flight`, else the operator's `--rate-per-minute` and `--max-in-flight`), otherwise the
client's address. Requests with no key or a key that is not valid count against their address,
so inventing keys buys no fresh allowance.

The counts live in this process: with several front-ends on one broker each counts its own
requests and the tasks submitted through it (docs/security.md).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from latentcast.server.config import Settings
from latentcast.server.errors import RequestRefused, error_response
from latentcast.server.protocol.events import RecordedEvent
from latentcast.server.security.auth import Caller, credentials
from latentcast.server.security.keyring import KeyRing
from latentcast.server.security.keys import ApiKey, digest
from latentcast.server.security.ratelimit import InFlight, RateLimiter
from latentcast.server.tasks.record import TaskRecord
from latentcast.server.tasks.service import TaskService

# Nobody knows when a task will end; a client told to come back in this many seconds usually finds room.
IN_FLIGHT_RETRY_SECONDS = 5
# The paths whose requests count: the native and the providers' APIs, not pages and static files.
LIMITED_PATHS = ("/v1", "/v2/", "/api/")


class Throttle:
    def __init__(self, settings: Settings, keys: KeyRing, service: TaskService) -> None:
        self.settings = settings
        self.keys = keys
        self.requests = RateLimiter()
        self.tasks = InFlight()
        service.subscribe(None, self._on_event)  # a task's terminal event frees its in-flight place

    def _on_event(self, event: RecordedEvent) -> None:
        if event.terminal:
            self.tasks.finished(event.task_id)

    # -- requests per minute ----------------------------------------------------------------

    async def check_rate(self, scope: Scope) -> None:
        """Count one request of its caller; a 429 when the caller is over its allowance."""
        key = await self._key_of(scope)
        per_minute = _own(key, "rate_per_minute", self.settings.rate_per_minute)
        if not per_minute:
            return
        wait = self.requests.take(identity(key, HTTPConnection(scope)), per_minute)
        if wait > 0:
            raise RequestRefused(
                429, "rate_limited", f"more than {per_minute} requests a minute; try again in {math.ceil(wait)} s",
                headers={"Retry-After": str(math.ceil(wait))},
            )

    async def _key_of(self, scope: Scope) -> ApiKey | None:
        """The valid key the request carries, if any. Looked up, not authenticated: refusing a bad
        key (and using up a signed request's nonce) is the endpoint's business."""
        given = credentials(Headers(scope=scope))
        if given is None or not await self.keys.enforced():
            return None
        return await self.keys.active(digest(given.key))

    # -- tasks in flight --------------------------------------------------------------------

    @contextlib.contextmanager
    def in_flight(self, connection: HTTPConnection, caller: Caller) -> Iterator[Callable[[TaskRecord], TaskRecord]]:
        """Hold one of the caller's in-flight places around queueing a task (a 429 when none is
        left); `track(record)` ties it to the queued task, whose end frees it. Without a limit,
        `track` does nothing."""
        limit = _own(caller.key, "max_in_flight", self.settings.max_in_flight)
        if not limit:
            yield lambda record: record
            return
        slot = self.tasks.reserve(identity(caller.key, connection), limit)
        if slot is None:
            raise RequestRefused(
                429, "too_many_in_flight", f"{limit} of your tasks are queued or running; wait for one to end",
                headers={"Retry-After": str(IN_FLIGHT_RETRY_SECONDS)},
            )

        def track(record: TaskRecord) -> TaskRecord:
            self.tasks.bind(slot, record.id)
            if record.status.is_final:  # it ended before this request did: no event will free it
                self.tasks.release(slot)
            return record

        try:
            yield track
        except BaseException:
            self.tasks.release(slot)
            raise


def identity(key: ApiKey | None, connection: HTTPConnection) -> str:
    if key is not None:
        return f"key:{key.id}"
    return f"ip:{connection.client.host if connection.client else 'unknown'}"


def _own(key: ApiKey | None, limit: str, default: int) -> int:
    """The key's own limit when it has one, else the operator's (0: none)."""
    value = getattr(key, limit, None) if key is not None else None
    return value if value is not None else default


class RateLimit:
    """ASGI middleware: `Throttle.check_rate` on every API request, before anything reads its body."""

    def __init__(self, app: ASGIApp, *, throttle: Throttle) -> None:
        self.app = app
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(LIMITED_PATHS):
            try:
                await self.throttle.check_rate(scope)
            except RequestRefused as exc:
                await error_response(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)
