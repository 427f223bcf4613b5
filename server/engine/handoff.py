"""A hand-off from one thread to an event loop that wakes the loop once per batch, not once per item.

`loop.call_soon_threadsafe` writes a byte to the loop's self-pipe on every call: a syscall that
drops and retakes the GIL, and a wake of the loop's thread, which then takes the GIL from the
device thread while torch wants it back between two ops. A `Handoff` keeps the items in a deque and
asks for a wake only on the first append since the loop last took them: a step's report costs one
wake, and a loop slower to get a core than the steps are to end finds several of them at once.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Handoff(Generic[T]):
    """Items appended on one thread, taken on the loop's, in the order they were appended.

    `wake` is called on the loop (`call_soon_threadsafe`) once for each batch: after the first
    append since the last `take`. It may find nothing left to take, when a `take` that ran
    meanwhile took the batch with the one before.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, wake: Callable[[], object]) -> None:
        self._loop = loop
        self._wake = wake
        self._items: collections.deque[T] = collections.deque()
        self._wake_pending = False

    def append(self, item: T) -> None:
        """Any thread; never blocks. A closed loop refuses it with RuntimeError, as
        `call_soon_threadsafe` does."""
        self._items.append(item)  # deque's append and popleft are atomic: no lock
        if self._wake_pending:
            return
        self._wake_pending = True
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:
            self._wake_pending = False
            raise

    def take(self) -> list[T]:
        """On the loop's thread: everything appended so far, oldest first."""
        # Cleared before the deque is read: an item appended from here on is either taken below
        # or asks for a wake of its own, never left waiting for one.
        self._wake_pending = False
        items = []
        while self._items:
            items.append(self._items.popleft())
        return items
