"""The in-process event bus: recorded events go straight to this process's listeners."""

from __future__ import annotations

from collections.abc import Callable

from latentcast.server.protocol.events import RecordedEvent
from latentcast.server.tasks.ports import Listener


class LocalBus:
    def __init__(self) -> None:
        self._by_task: dict[str, set[Listener]] = {}
        self._everything: set[Listener] = set()
        self._cancel_listeners: list[Callable[[str, str], None]] = []

    def publish(self, event: RecordedEvent) -> None:
        # Listeners only queue the event (flow.OutboundQueue): publishing never waits on a client.
        for listener in tuple(self._by_task.get(event.task_id, ())):
            listener(event)
        for listener in tuple(self._everything):
            listener(event)

    def subscribe(self, task_id: str | None, listener: Listener) -> Callable[[], None]:
        group = self._everything if task_id is None else self._by_task.setdefault(task_id, set())

        def unsubscribe() -> None:
            group.discard(listener)
            if task_id is not None and not group:
                self._by_task.pop(task_id, None)

        group.add(listener)
        return unsubscribe

    def request_cancel(self, task_id: str, reason: str) -> None:
        for listener in self._cancel_listeners:
            listener(task_id, reason)

    def on_cancel(self, listener: Callable[[str, str], None]) -> None:
        self._cancel_listeners.append(listener)
