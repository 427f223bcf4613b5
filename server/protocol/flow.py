"""Per-subscriber flow control, free of I/O.

Each subscriber (one WebSocket or SSE stream) drains its own bounded queue, so a slow client
never slows the task or the other clients:

- events and control messages are never dropped: seq stays gapless for every subscriber;
- preview images are latest-wins: when a newer preview for the same task is queued behind an
  unsent one, the older event is kept but loses its image;
- a subscriber whose live messages still exceed its bound is overflowing and gets closed
  (WebSocket code 1013); it resumes with `since` and misses nothing.

Messages the client paces itself do not count against the bound: replayed events (the stored
log, read a page at a time as the subscriber drains: see protocol.subscriber) come at the pace of
its reading, and replies at the pace of its requests (a hundred subscribes sent at once are a
hundred replies queued at once). Only live events that pile up behind a client that does not read
are a sign of a slow client.
"""

from __future__ import annotations

import collections
import dataclasses

from latentcast.server.protocol.messages import EventMessage, ServerMessage


@dataclasses.dataclass(slots=True)
class _Queued:
    message: ServerMessage
    paced: bool  # by the client: a replayed event or a reply


class OutboundQueue:
    def __init__(self, maxlen: int = 1024) -> None:
        self.maxlen = maxlen
        self._items: collections.deque[_Queued] = collections.deque()
        # task id -> the queued message whose event still carries an image
        self._pending_preview: dict[str, EventMessage] = {}
        self._paced = 0
        self.previews_dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def overflowed(self) -> bool:
        return len(self._items) - self._paced > self.maxlen

    def push(self, message: ServerMessage, *, paced: bool = False) -> None:
        if isinstance(message, EventMessage) and message.event.preview is not None:
            task_id = message.event.task_id
            older = self._pending_preview.get(task_id)
            if older is not None:
                self._strip(older)
            self._pending_preview[task_id] = message
        self._items.append(_Queued(message, paced))
        self._paced += paced

    def pop(self) -> ServerMessage:
        queued = self._items.popleft()
        self._paced -= queued.paced
        message = queued.message
        if isinstance(message, EventMessage) and self._pending_preview.get(message.event.task_id) is message:
            del self._pending_preview[message.event.task_id]
        return message

    def _strip(self, older: EventMessage) -> None:
        # Newest previews sit at the back; search from there.
        for index in range(len(self._items) - 1, -1, -1):
            queued = self._items[index]
            if queued.message is older:
                queued.message = EventMessage(older.event.without_preview(), older.previews)
                self.previews_dropped += 1
                return
