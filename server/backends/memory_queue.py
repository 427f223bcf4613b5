"""The in-process job queue: a FIFO of task ids that workers in this process await.

It holds nothing durable: the SQLite store knows which tasks are queued, and a restart rebuilds
this queue from it in creation order. With one process there is nobody to reclaim from, so
`keepalive` and `done` have nothing to do and every claim is a first claim.
"""

from __future__ import annotations

import asyncio
import collections

from server.backends.base import Fence, Job


class MemoryQueue:
    def __init__(self) -> None:
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._ready = asyncio.Condition()
        self._announced: dict[str, int] = {}
        self._attempts: dict[str, int] = {}

    async def put(self, task_id: str, attempts: int = 0) -> int:
        async with self._ready:
            self._ids[task_id] = None
            self._attempts[task_id] = attempts
            self._announced[task_id] = len(self._ids)
            self._ready.notify()
            return len(self._ids)

    async def take(self, worker: str) -> Job:
        async with self._ready:
            await self._ready.wait_for(lambda: bool(self._ids))
            task_id, _ = self._ids.popitem(last=False)
        self._announced.pop(task_id, None)
        return Job(task_id, Fence(worker, self._attempts.pop(task_id, 0) + 1))

    async def keepalive(self, job: Job) -> None:
        return None

    async def done(self, job: Job) -> None:
        return None

    async def remove(self, task_id: str) -> bool:
        self._announced.pop(task_id, None)
        self._attempts.pop(task_id, None)
        return self._ids.pop(task_id, False) is None

    async def position(self, task_id: str) -> int | None:
        # Live, as Redis's ZRANK is: a reader must not see a position the announcer has not caught up with.
        return list(self._ids).index(task_id) + 1 if task_id in self._ids else None

    async def length(self) -> int:
        return len(self._ids)

    async def moved(self) -> list[tuple[str, int]]:
        changes = []
        for position, task_id in enumerate(self._ids, start=1):
            if self._announced.get(task_id) != position:
                self._announced[task_id] = position
                changes.append((task_id, position))
        return changes
