"""The in-process job queue: a FIFO of task ids that workers in this process await.

It holds nothing durable: the SQLite store knows which tasks are queued, and a restart rebuilds
this queue from it in creation order. With one process there is nobody to reclaim from, so
`keepalive` and `done` have nothing to do and every claim is a first claim.
"""

from __future__ import annotations

import asyncio
import bisect
import collections

from latentcast.server.tasks.ports import Fence, Job


class MemoryQueue:
    """Each task gets a ticket (1, 2, 3, ...) when queued; its live position is its ticket's rank
    among the waiting ones: tickets from the head's to its own, less those cancelled in between.
    That is O(log n) per read, so reading positions stays cheap with thousands queued."""

    def __init__(self) -> None:
        self._ids: collections.OrderedDict[str, int] = collections.OrderedDict()  # id -> ticket
        self._tickets = 0
        self._gone: list[int] = []  # sorted tickets removed from behind the head
        self._ready = asyncio.Condition()
        self._announced: dict[str, int] = {}
        self._attempts: dict[str, int] = {}

    async def put(self, task_id: str, attempts: int = 0) -> int:
        async with self._ready:
            self._tickets += 1
            self._ids[task_id] = self._tickets
            self._attempts[task_id] = attempts
            self._announced[task_id] = len(self._ids)
            self._ready.notify()
            return len(self._ids)

    async def take(self, worker: str) -> Job:
        async with self._ready:
            await self._ready.wait_for(lambda: bool(self._ids))
            task_id, _ = self._ids.popitem(last=False)
            self._forget_gone_before_head()
        self._announced.pop(task_id, None)
        return Job(task_id, Fence(worker, self._attempts.pop(task_id, 0) + 1))

    async def keepalive(self, job: Job) -> None:
        return None

    async def done(self, job: Job) -> None:
        return None

    async def remove(self, task_id: str) -> bool:
        self._announced.pop(task_id, None)
        self._attempts.pop(task_id, None)
        ticket = self._ids.pop(task_id, None)
        if ticket is None:
            return False
        bisect.insort(self._gone, ticket)
        self._forget_gone_before_head()
        return True

    def _forget_gone_before_head(self) -> None:
        head = next(iter(self._ids.values()), self._tickets + 1)
        del self._gone[: bisect.bisect_left(self._gone, head)]

    async def position(self, task_id: str) -> int | None:
        # Live, as Redis's ZRANK is: a reader must not see a position the announcer has not caught up with.
        ticket = self._ids.get(task_id)
        if ticket is None:
            return None
        head = next(iter(self._ids.values()))
        return ticket - head + 1 - bisect.bisect_left(self._gone, ticket)

    async def length(self) -> int:
        return len(self._ids)

    async def moved(self) -> list[tuple[str, int]]:
        changes = []
        for position, task_id in enumerate(self._ids, start=1):
            if self._announced.get(task_id) != position:
                self._announced[task_id] = position
                changes.append((task_id, position))
        return changes
