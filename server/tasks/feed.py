"""One subscriber's feed of one task: the stored log after `since`, then live events, each once.

Shared by the WebSocket and SSE transports, which get it from `TaskService.feed`. The feed
listens to the bus before it reads the log, holds live events back while it catches up, and
passes everything through a `Cursor`; if the cursor finds a hole (possible when live events come
from another process), the feed reads the log again from where it stands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from latentcast.client.wire import Cursor, Gap
from latentcast.server.protocol.events import Event
from latentcast.server.tasks.ports import EventBus, TaskStore


class TaskFeed:
    def __init__(
        self,
        store: TaskStore,
        bus: EventBus,
        task_id: str,
        since: int,
        deliver: Callable[[Event], None],
    ) -> None:
        self.task_id = task_id
        self.cursor = Cursor(last=since)
        self._store = store
        self._bus = bus
        self._deliver = deliver
        self._held: list[Event] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._catching_up: asyncio.Task[None] | None = None

    @property
    def done(self) -> bool:
        return self.cursor.done

    async def start(self) -> None:
        self._held = []
        self._unsubscribe = self._bus.subscribe(self.task_id, self._on_live)
        await self._catch_up()

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._catching_up is not None and self._catching_up is not asyncio.current_task():
            self._catching_up.cancel()

    def _on_live(self, event: Event) -> None:
        if self._held is not None:
            self._held.append(event)
        else:
            self._offer(event)

    def _offer(self, event: Event) -> None:
        try:
            admitted = self.cursor.admit(event)
        except Gap:
            self._held = [event]
            self._catching_up = asyncio.get_running_loop().create_task(self._catch_up())
            return
        if admitted:
            self._deliver(event)
            if self.cursor.done:
                self.close()

    async def _catch_up(self) -> None:
        for event in await self._store.events(self.task_id, self.cursor.last):
            if self.cursor.admit(event):
                self._deliver(event)
        held, self._held = self._held or [], None
        for event in held:
            self._offer(event)
        if self.cursor.done:
            self.close()
