"""Calls from the device thread into the event loop, with one wake of the loop per batch.

`loop.call_soon_threadsafe` writes a byte to the loop's self-pipe on every call. A denoising step
makes three such calls (its progress event, its log line, its preview's timing): three syscalls
in the step callback, each releasing and retaking the GIL, and three wakes of the loop's thread,
each taking the GIL from the device thread while torch wants it back between ops. Calls made with
`call_soon_from_thread` wait in one queue per loop, and only the first since the loop last
emptied it wakes the loop: a step's calls share one wake, and a loop slower to get a core than
the step is to end finds all of them at once. Order is kept, as `call_soon_threadsafe` keeps it.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["call_soon_from_thread"]


class _Inbox:
    # Holds no reference to its loop: it is the value of a map keyed weakly by that loop.
    def __init__(self) -> None:
        self._calls: collections.deque[tuple[Callable[..., object], tuple[Any, ...]]] = collections.deque()
        self._wake_pending = False

    def put(self, loop: asyncio.AbstractEventLoop, call: Callable[..., object], args: tuple[Any, ...]) -> None:
        self._calls.append((call, args))  # deque's append and popleft are atomic: no lock
        if self._wake_pending:
            return
        self._wake_pending = True
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # a closed loop: the caller hears it, as from call_soon_threadsafe
            self._wake_pending = False
            raise

    def _drain(self) -> None:
        # Cleared before the queue is read: a call queued from here on is either run below or
        # wakes the loop again, never left waiting.
        self._wake_pending = False
        calls = self._calls
        while calls:
            call, args = calls.popleft()
            try:
                call(*args)
            except Exception as exc:  # one failing call must not hold back the ones behind it
                context = {"message": f"exception in {call!r}", "exception": exc}
                asyncio.get_running_loop().call_exception_handler(context)


_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inbox] = weakref.WeakKeyDictionary()
_inboxes_lock = threading.Lock()


def call_soon_from_thread(loop: asyncio.AbstractEventLoop, call: Callable[..., object], *args: Any) -> None:
    """`loop.call_soon_threadsafe(call, *args)`, sharing the loop's wake with the calls around it."""
    inbox = _inboxes.get(loop)
    if inbox is None:
        with _inboxes_lock:
            inbox = _inboxes.setdefault(loop, _Inbox())
    inbox.put(loop, call, args)
