"""Items appended on a thread reach the loop in order, and a burst of them wakes the loop once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from latentcast.server.engine.handoff import Handoff


class WakeCountingLoop(asyncio.SelectorEventLoop):
    """A real selector loop that counts the self-pipe wakes asked of it."""

    wakes = 0

    def call_soon_threadsafe(self, *args: Any, **kwargs: Any) -> asyncio.Handle:
        self.wakes += 1
        return super().call_soon_threadsafe(*args, **kwargs)


@pytest.fixture
def loop() -> Iterator[WakeCountingLoop]:
    loop = WakeCountingLoop()
    yield loop
    loop.close()


def burst_from_thread(handoff: Handoff[int], items: range) -> None:
    """Append every item from another thread while the loop is held, so that it takes none in between."""
    thread = threading.Thread(target=lambda: [handoff.append(item) for item in items])
    thread.start()
    thread.join()  # on the loop's thread: the loop is blocked until the whole burst is appended


def test_a_burst_is_taken_in_order_after_one_wake(loop: WakeCountingLoop) -> None:
    async def main() -> None:
        woken = asyncio.Event()
        handoff: Handoff[int] = Handoff(loop, woken.set)
        burst_from_thread(handoff, range(1000))
        await woken.wait()
        assert handoff.take() == list(range(1000))
        assert loop.wakes == 1
        # Taken: the next burst wakes the loop again, once.
        woken.clear()
        burst_from_thread(handoff, range(1000, 1010))
        await woken.wait()
        assert handoff.take() == list(range(1000, 1010))
        assert loop.wakes == 2
        assert handoff.take() == []

    loop.run_until_complete(main())


def test_an_item_appended_before_its_wake_ran_is_taken_with_the_batch_and_wakes_nothing(loop: WakeCountingLoop) -> None:
    async def main() -> None:
        woken = asyncio.Event()
        handoff: Handoff[int] = Handoff(loop, woken.set)
        burst_from_thread(handoff, range(3))
        await woken.wait()
        burst_from_thread(handoff, range(3, 5))  # woken, not yet taken: these join the batch
        assert handoff.take() == [0, 1, 2, 3, 4]
        assert loop.wakes == 1

    loop.run_until_complete(main())


def test_a_closed_loop_refuses_the_append_as_call_soon_threadsafe_does(loop: WakeCountingLoop) -> None:
    handoff: Handoff[int] = Handoff(loop, lambda: None)
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        handoff.append(1)
    with pytest.raises(RuntimeError, match="closed"):  # and again: the refusal left no wake pending
        handoff.append(2)
