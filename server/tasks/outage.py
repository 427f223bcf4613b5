"""Riding out an outage of the shared backend: retry with a capped backoff, log once per outage.

Workers and the background loops of a front-end (heartbeats, queue positions, the model catalog)
must outlive a Redis restart: a loop that dies on its first `StoreUnavailable` leaves a process
that looks alive and does nothing. The cap is short so that work resumes within about a second
of Redis answering again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from latentcast.server.tasks.ports import StoreBusy, StoreUnavailable

T = TypeVar("T")

FIRST_DELAY = 0.1
MAX_DELAY = 1.0


class Backoff:
    """The delays of one loop's retries, and its two log lines: when the outage began, when it ended."""

    def __init__(self, what: str, log: logging.Logger) -> None:
        self.what = what
        self._log = log
        self._delay = FIRST_DELAY
        self._since: float | None = None
        self._busy = False  # the failure that began it was StoreBusy

    @property
    def failing(self) -> bool:
        return self._since is not None

    async def failed(self, exc: StoreUnavailable) -> None:
        """Log the first failure of an outage, then sleep the next delay (doubling up to MAX_DELAY).
        A busy backend (`StoreBusy`) is logged as busy: it answers, this process asked too much."""
        if self._since is None:
            self._since = time.monotonic()
            self._busy = isinstance(exc, StoreBusy)
            self._log.warning("%s: backend %s (%s); retrying", self.what, "busy" if self._busy else "unreachable", exc)
        await asyncio.sleep(self._delay)
        self._delay = min(self._delay * 2, MAX_DELAY)

    def succeeded(self) -> None:
        if self._since is not None:
            again = "no longer busy" if self._busy else "reachable again"
            self._log.warning("%s: backend %s after %.1f s", self.what, again, time.monotonic() - self._since)
        self._since = None
        self._delay = FIRST_DELAY


async def until_reachable(call: Callable[[], Awaitable[T]], backoff: Backoff) -> T:
    """`call()` again and again until the backend answers it (cancel the caller to give up)."""
    while True:
        try:
            result = await call()
        except StoreUnavailable as exc:
            await backoff.failed(exc)
            continue
        backoff.succeeded()
        return result


async def every(seconds: float, step: Callable[[], Awaitable[object]], backoff: Backoff) -> None:
    """Run `step` every `seconds` for the caller's life; an unreachable backend skips a beat, never the loop."""
    while True:
        try:
            await step()
        except StoreUnavailable as exc:
            await backoff.failed(exc)
            continue
        backoff.succeeded()
        await asyncio.sleep(seconds)
