"""Per-subscriber flow control, free of I/O.

Each subscriber (one WebSocket or SSE stream) drains its own bounded queue, so a slow client
never slows the task or the other clients:

- lifecycle and progress events are never dropped: seq stays gapless for every subscriber;
- preview images are latest-wins: when a newer preview for the same task is queued behind an
  unsent one, the older event is kept but loses its image;
- a subscriber whose live events still exceed its bound is overflowing and gets closed
  (WebSocket code 1013); it resumes with `since` and misses nothing.

Replayed events (the stored log, read a page at a time as the subscriber drains: see
server.tasks.feed) do not count against the bound: their pace is the client's reading, so only
live events that pile up behind a client that does not read are a sign of a slow client.
"""

from __future__ import annotations

import collections
import dataclasses

from latentcast.server.protocol.events import Event


@dataclasses.dataclass(slots=True)
class _Queued:
    event: Event
    replayed: bool


class OutboundQueue:
    def __init__(self, maxlen: int = 1024, previews: bool = True) -> None:
        self.maxlen = maxlen
        self.previews = previews
        self._items: collections.deque[_Queued] = collections.deque()
        # task id -> the queued event that still carries an image
        self._pending_preview: dict[str, Event] = {}
        self._replayed = 0
        self.previews_dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def overflowed(self) -> bool:
        return len(self._items) - self._replayed > self.maxlen

    def push(self, event: Event, *, replayed: bool = False) -> None:
        if event.preview is not None:
            if not self.previews:
                event = event.without_preview()
            else:
                older = self._pending_preview.get(event.task_id)
                if older is not None:
                    self._strip(older)
                self._pending_preview[event.task_id] = event
        self._items.append(_Queued(event, replayed))
        self._replayed += replayed

    def pop(self) -> Event:
        queued = self._items.popleft()
        self._replayed -= queued.replayed
        event = queued.event
        if event.preview is not None and self._pending_preview.get(event.task_id) is event:
            del self._pending_preview[event.task_id]
        return event

    def _strip(self, older: Event) -> None:
        # Newest previews sit at the back; search from there.
        for index in range(len(self._items) - 1, -1, -1):
            queued = self._items[index]
            if queued.event is older:
                queued.event = older.without_preview()
                self.previews_dropped += 1
                return
