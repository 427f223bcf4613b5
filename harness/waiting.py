"""Waiting for a condition, never for a clock: the one deadline that tests and benchmarks share.

A test on a loaded 2-core machine cannot know how long anything takes, so it polls for the state
it needs; the timeout only turns a hang into a failure that names what never happened.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Deadline:
    """`timeout` seconds from now; `check()` raises TimeoutError naming `what` once they have
    passed (a callable `what` is read only then: a process's log as it is at the end)."""

    def __init__(self, what: str | Callable[[], str], timeout: float) -> None:
        self.what = what
        self.timeout = timeout
        self.began = time.monotonic()

    def left(self) -> float:
        return self.timeout - (time.monotonic() - self.began)

    def check(self) -> None:
        if self.left() < 0:
            what = self.what() if callable(self.what) else self.what
            raise TimeoutError(f"{what}: not after {self.timeout:g}s")


def until(condition: Callable[[], T], what: str | Callable[[], str], timeout: float, interval: float = 0.05) -> T:
    """Poll `condition` until it returns something true, and return that: the blocking form of
    tests.support.eventually, for processes and benchmarks outside an event loop."""
    deadline = Deadline(what, timeout)
    while not (result := condition()):
        deadline.check()
        time.sleep(interval)
    return result


async def eventually(condition: Callable[[], T | Awaitable[T]], what: str | Callable[[], str], timeout: float = 120) -> T:
    """Poll `condition` (a plain or an async function) until it returns something true; that value.

    Every test that waits, waits here (or in `until`): for a condition, never for a clock. The
    timeout only guards against a hang, sized for a loaded machine.
    """
    deadline = Deadline(what, timeout)
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        deadline.check()
        await asyncio.sleep(0.05)
