"""Pages of a task's log that many subscribers ask for at once, read once for all of them.

A thousand subscribers of one task that connect together each ask for the same first page of its
log at about the same moment; on Redis that was a thousand reads and a thousand pool connections
wanted at once. Here a page (task, since, limit) is read at most once at a time in this process:
whoever asks for it while a read of it is in flight waits for the next read, which starts when
that one ends and answers everyone who asked meanwhile. A caller never joins the read in flight:
that read may have left the store before the caller began listening for live events (its feed's
`start`), and an event recorded in between would then reach the caller neither way. Nothing is
kept once a read is answered: this shares reads, it caches nothing.

Every caller of one read gets the same list of the same (immutable) events: read it, don't change it.
"""

from __future__ import annotations

import asyncio
import contextlib

from latentcast.server.protocol.events import Event
from latentcast.server.tasks.ports import EventLog

_Page = tuple[str, int, int | None]  # task id, since, limit


class SharedPages:
    """An `EventLog` whose concurrent reads of the same page are one read of `log`."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._reading: dict[_Page, asyncio.Task[list[Event]]] = {}  # in flight: nobody joins these
        self._waiting: dict[_Page, asyncio.Task[list[Event]]] = {}  # not yet started: callers join

    async def events(self, task_id: str, since: int = 0, *, limit: int | None = None) -> list[Event]:
        page = (task_id, since, limit)
        read = self._waiting.get(page)
        if read is None:
            read = self._waiting[page] = asyncio.get_running_loop().create_task(self._read(page))
            read.add_done_callback(_retrieve)
        # A caller that goes away (its socket closed) must not cancel the read for the others.
        return await asyncio.shield(read)

    async def _read(self, page: _Page) -> list[Event]:
        this = asyncio.current_task()
        assert this is not None
        try:
            ahead = self._reading.get(page)
            if ahead is not None:
                await asyncio.wait([ahead])  # whatever its outcome: this read is a read of its own
            # From here on nobody joins: who asks now may have begun listening after this read.
            del self._waiting[page]
            self._reading[page] = this
            task_id, since, limit = page
            return await self._log.events(task_id, since, limit=limit)
        finally:
            if self._waiting.get(page) is this:  # cancelled while it waited (the loop is closing)
                del self._waiting[page]
            if self._reading.get(page) is this:
                del self._reading[page]


def _retrieve(read: asyncio.Task[list[Event]]) -> None:
    """Mark a failed read's error as seen: its callers may all have gone before it ended, and each
    one still waiting gets the error itself."""
    with contextlib.suppress(asyncio.CancelledError):
        read.exception()
