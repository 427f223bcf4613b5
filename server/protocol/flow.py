"""Per-subscriber flow control, free of I/O.

Each subscriber (one WebSocket or SSE stream) drains its own bounded queue, so a slow client
never slows the task or the other clients:

- lifecycle and progress events are never dropped: seq stays gapless for every subscriber;
- preview images are latest-wins: when a newer preview for the same task is queued behind an
  unsent one, the older event is kept but loses its image;
- a subscriber whose queue still exceeds its bound is overflowing and gets closed (WebSocket
  code 1013); it resumes with `since` and misses nothing.
"""

from __future__ import annotations

import collections

from latentcast.server.protocol.events import Event


class OutboundQueue:
    def __init__(self, maxlen: int = 1024, previews: bool = True) -> None:
        self.maxlen = maxlen
        self.previews = previews
        self._items: collections.deque[Event] = collections.deque()
        # task id -> index-free marker of the queued event that still carries an image
        self._pending_preview: dict[str, Event] = {}
        self.previews_dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def overflowed(self) -> bool:
        return len(self._items) > self.maxlen

    def push(self, event: Event) -> None:
        if event.preview is not None:
            if not self.previews:
                event = event.without_preview()
            else:
                older = self._pending_preview.get(event.task_id)
                if older is not None:
                    self._strip(older)
                self._pending_preview[event.task_id] = event
        self._items.append(event)

    def pop(self) -> Event:
        event = self._items.popleft()
        if event.preview is not None and self._pending_preview.get(event.task_id) is event:
            del self._pending_preview[event.task_id]
        return event

    def _strip(self, older: Event) -> None:
        # Newest previews sit at the back; search from there.
        for index in range(len(self._items) - 1, -1, -1):
            if self._items[index] is older:
                self._items[index] = older.without_preview()
                self.previews_dropped += 1
                return
