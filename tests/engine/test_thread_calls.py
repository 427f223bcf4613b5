"""Calls from a thread reach the loop in order, and a burst of them wakes the loop once."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from latentcast.server.engine.thread_calls import call_soon_from_thread


class WakeCountingLoop(asyncio.SelectorEventLoop):
    """A real selector loop that counts the self-pipe wakes asked of it."""

    wakes = 0

    def call_soon_threadsafe(self, *args: Any, **kwargs: Any) -> asyncio.Handle:
        self.wakes += 1
        return super().call_soon_threadsafe(*args, **kwargs)


@pytest.fixture
def loop() -> Any:
    loop = WakeCountingLoop()
    yield loop
    loop.close()


def burst_from_thread(loop: asyncio.AbstractEventLoop, calls: list[tuple[Any, ...]]) -> None:
    """Make every call from another thread while the loop is held, so none can run in between."""

    def make() -> None:
        for call in calls:
            call_soon_from_thread(loop, *call)

    thread = threading.Thread(target=make)
    thread.start()
    thread.join()  # on the loop's thread: the loop is blocked until the whole burst is queued


def test_a_burst_runs_in_order_after_one_wake(loop: WakeCountingLoop) -> None:
    got: list[int] = []

    async def main() -> None:
        done = asyncio.Event()
        burst_from_thread(loop, [(got.append, i) for i in range(1000)] + [(done.set,)])
        await done.wait()
        assert got == list(range(1000))
        assert loop.wakes == 1
        # The loop emptied the queue: the next burst wakes it again, once.
        burst_from_thread(loop, [(got.append, i) for i in range(1000, 1010)] + [(done.clear,)])
        while done.is_set():
            await asyncio.sleep(0)
        assert got == list(range(1010)) and loop.wakes == 2

    loop.run_until_complete(main())


def test_a_failing_call_is_reported_and_the_rest_still_run(loop: WakeCountingLoop) -> None:
    got: list[int] = []
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))

    def fail(n: int) -> None:
        raise ValueError(f"call {n} failed")

    async def main() -> None:
        done = asyncio.Event()
        burst_from_thread(loop, [(got.append, 1), (fail, 2), (got.append, 3), (done.set,)])
        await done.wait()

    loop.run_until_complete(main())
    assert got == [1, 3]
    assert [str(context["exception"]) for context in reported] == ["call 2 failed"]


def test_a_closed_loop_refuses_the_call_as_call_soon_threadsafe_does(loop: WakeCountingLoop) -> None:
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        call_soon_from_thread(loop, print)
    with pytest.raises(RuntimeError, match="closed"):  # and again: the refusal left no wake pending
        call_soon_from_thread(loop, print)
