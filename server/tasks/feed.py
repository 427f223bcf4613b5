"""One subscriber's feed of one task: the stored log after `since`, then live events, each once.

Shared by the WebSocket and SSE transports, which get it from `TaskService.feed`. The feed
listens to the bus from `start` on and passes everything through a `Cursor`. The stored log is
not pushed at the subscriber: its transport calls `pull` for the next page of REPLAY_PAGE events
once it has sent the last one, so a replay of any length goes as fast as the client reads and
never fills the subscriber's queue (protocol.flow). Live events that arrive meanwhile wait in the
feed (at most a page of them: the store has every event a live subscriber gets, so older ones are
dropped and read again) and follow once the log is caught up. If the cursor finds a hole
(possible when live events come from another process), the feed goes back to reading the log
from where it stands, and says so through `ready`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from latentcast.client.wire import Cursor, Gap
from latentcast.server.protocol.events import Event
from latentcast.server.tasks.ports import EventBus, EventLog

# Events read from the store at once: small enough that a page is sent in a moment, large enough
# that a long log is a handful of reads.
REPLAY_PAGE = 128


class Deliver(Protocol):
    def __call__(self, event: Event, *, replayed: bool) -> None: ...


class TaskFeed:
    def __init__(
        self,
        store: EventLog,
        bus: EventBus,
        task_id: str,
        since: int,
        deliver: Deliver,
        ready: Callable[[], None],
    ) -> None:
        self.task_id = task_id
        self.cursor = Cursor(last=since)
        self._store = store
        self._bus = bus
        self._deliver = deliver
        self._ready = ready
        self._held: list[Event] | None = None  # live events waiting for the log; None once caught up
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def done(self) -> bool:
        return self.cursor.done

    @property
    def replaying(self) -> bool:
        """Whether the stored log has more to give: call `pull`."""
        return self._held is not None and not self.cursor.done

    def start(self) -> None:
        """Listen to live events (held back until the log is caught up); the log waits for `pull`."""
        self._held = []
        self._unsubscribe = self._bus.subscribe(self.task_id, self._on_live)

    async def pull(self) -> None:
        """Deliver the next page of the stored log; past its end, the live events held meanwhile."""
        page = await self._store.events(self.task_id, self.cursor.last, limit=REPLAY_PAGE)
        for event in page:
            if self.cursor.admit(event):
                self._deliver(event, replayed=True)
        if self.cursor.done:
            self.close()
        elif len(page) < REPLAY_PAGE and self._held is not None:
            held, self._held = self._held, None
            for event in held:
                self._on_live(event)  # after a hole the rest waits again

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_live(self, event: Event) -> None:
        if self._held is None:
            self._offer(event)
        elif len(self._held) < REPLAY_PAGE:
            self._held.append(event)
        else:
            self._held = [event]  # the older ones are in the store, where `pull` reads them

    def _offer(self, event: Event) -> None:
        try:
            admitted = self.cursor.admit(event)
        except Gap:
            self._held = [event]
            self._ready()
            return
        if admitted:
            self._deliver(event, replayed=False)
            if self.cursor.done:
                self.close()
