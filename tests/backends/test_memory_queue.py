"""The in-process queue's live positions agree with a plain list under any mix of operations."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from latentcast.server.backends.memory_queue import MemoryQueue

# put a new task, take the head, or cancel the task at some index of those waiting
operations = st.lists(
    st.one_of(st.just(("put", 0)), st.just(("take", 0)), st.tuples(st.just("remove"), st.integers(0, 30))), max_size=60
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_positions_match_a_plain_fifo(steps: list[tuple[str, int]]) -> None:
    async def run() -> None:
        queue, model, made = MemoryQueue(), [], 0
        for operation, index in steps:
            if operation == "put":
                made += 1
                assert await queue.put(f"t{made}") == len(model) + 1
                model.append(f"t{made}")
            elif operation == "take" and model:
                assert (await queue.take("w")).task_id == model.pop(0)
            elif operation == "remove" and model:
                assert await queue.remove(model.pop(index % len(model)))
            for position, task_id in enumerate(model, start=1):
                assert await queue.position(task_id) == position
            assert await queue.length() == len(model)
        assert await queue.position("never queued") is None

    asyncio.run(run())
