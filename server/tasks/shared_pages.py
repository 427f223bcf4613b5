"""Pages of a task's log that many subscribers ask for at once, read once for all of them.

A thousand subscribers of one task that connect together each ask for the same first page of its
log at about the same moment; on Redis that was a thousand reads and a thousand pool connections
wanted at once. Here a page (task, since, limit) is read by at most one read at a time in this
process, and one more waits behind it for everyone who asks meanwhile:

- nobody reading it: the caller reads it at once, as if nothing stood between it and the store;
- a read of it in flight: the caller waits for the next read, which starts when that one ends and
  answers everyone who asked while it waited. A caller never joins the read in flight: that read
  may have left the store before the caller began listening for live events (its `follow`),
  and an event recorded in between would then reach the caller neither way.

Nothing is kept once a read is answered: this shares reads, it caches nothing. Every caller of one
shared read gets the same list of the same (immutable) events: read it, don't change it.
"""

from __future__ import annotations

import asyncio
import contextlib

from latentcast.server.protocol.events import RecordedEvent
from latentcast.server.tasks.ports import EventLog

_Page = tuple[str, int, int | None]  # task id, since, limit


class SharedPages:
    """An `EventLog` whose concurrent reads of the same page are shared reads of `log`."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._reading: dict[_Page, asyncio.Future[None]] = {}  # in flight (done when it ends): nobody joins
        self._next: dict[_Page, asyncio.Task[list[RecordedEvent]]] = {}  # waits for the one in flight: callers join

    async def events(self, task_id: str, since: int = 0, *, limit: int | None = None) -> list[RecordedEvent]:
        page = (task_id, since, limit)
        read = self._next.get(page)
        if read is None:
            if page not in self._reading:
                return await self._read(page)
            ahead = self._reading[page]
            read = self._next[page] = asyncio.get_running_loop().create_task(self._read_next(page, ahead))
            read.add_done_callback(_retrieve)
        # A caller that goes away (its socket closed) must not cancel the read for the others.
        return await asyncio.shield(read)

    async def _read(self, page: _Page) -> list[RecordedEvent]:
        ended = self._reading[page] = asyncio.get_running_loop().create_future()
        try:
            task_id, since, limit = page
            return await self._log.events(task_id, since, limit=limit)
        finally:
            del self._reading[page]
            ended.set_result(None)

    async def _read_next(self, page: _Page, ahead: asyncio.Future[None]) -> list[RecordedEvent]:
        this = asyncio.current_task()
        try:
            await asyncio.wait([ahead])
        finally:
            # From here on nobody joins: who asks now may have begun listening after this read.
            if self._next.get(page) is this:
                del self._next[page]
        return await self._read(page)


def _retrieve(read: asyncio.Task[list[RecordedEvent]]) -> None:
    """Mark a failed read's error as seen: its callers may all have gone before it ended, and each
    one still waiting gets the error itself."""
    with contextlib.suppress(asyncio.CancelledError):
        read.exception()
