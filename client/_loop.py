"""A private event loop in a daemon thread, so blocking code can drive the async client.

`run(coro)` blocks until the coroutine finishes and returns its result or raises its exception.
If the waiting thread is interrupted (Ctrl-C raises KeyboardInterrupt in it), the coroutine is
cancelled and unwound (sockets closed) before the interrupt propagates.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str = "latentcast-client") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.loop.is_closed() or not self._thread.is_alive():
            coro.close()
            raise RuntimeError("the client is closed")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a sync client method was called from inside its own event loop")
        done = threading.Event()
        started: concurrent.futures.Future[asyncio.Task[T]] = concurrent.futures.Future()

        def start() -> None:
            task = self.loop.create_task(coro)
            task.add_done_callback(lambda _: done.set())
            started.set_result(task)

        self.loop.call_soon_threadsafe(start)
        try:
            task = started.result()
            done.wait()
        except BaseException:
            # Interrupted while waiting: cancel the coroutine and let it clean up before going on.
            task = started.result(timeout=10)
            self.loop.call_soon_threadsafe(task.cancel)
            done.wait(timeout=10)
            raise
        return task.result()

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()
