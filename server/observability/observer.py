"""Metrics and status logs derived from the event stream.

`TaskObserver` listens to every task's events (`TaskService.subscribe(None, ...)`),
the same stream every subscriber gets, so whatever emits an event (the HTTP API, a compatibility
endpoint, a worker in this process or, with Redis, in another one) is counted the same way and
nothing in the service had to learn about metrics. Per event it does a few dict lookups and
metric updates; per unfinished task it keeps one small record, dropped at the terminal event.

It also writes the one log line per task status change (`latentcast.task` logger): the task id,
the new and previous status, the event that moved it, the worker, and for failures the error
code; never the task's token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from latentcast.server.backends.factory import Backend
from latentcast.server.observability import metrics
from latentcast.server.protocol.events import EventType, RecordedEvent, TaskStatus, status_after
from latentcast.server.tasks.record import TaskRecord
from latentcast.server.tasks.service import TaskService

log = logging.getLogger("latentcast.task")

_UNFINISHED = frozenset(metrics.UNFINISHED_STATUSES)


class _TaskState:
    __slots__ = ("status", "worker", "queued_at", "accepted_at", "last_step_at")

    def __init__(self, status: str | None) -> None:
        self.status = status
        self.worker: str | None = None
        self.queued_at: float | None = None
        self.accepted_at: float | None = None
        self.last_step_at: float | None = None


class TaskObserver:
    def __init__(self, *, log_status: bool = True) -> None:
        self.log_status = log_status
        self._tasks: dict[str, _TaskState] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._status_gauges = {status: metrics.tasks.labels(status) for status in metrics.UNFINISHED_STATUSES}
        self._finished = {status: metrics.tasks_finished.labels(status) for status in metrics.FINAL_STATUSES}
        self._event_counters: dict[str, Any] = {}
        self._heartbeats: dict[str, tuple[Any, Any]] = {}

    # -- wiring -----------------------------------------------------------------------------

    def seed(self, records: Iterable[TaskRecord]) -> None:
        """Count tasks that were unfinished before this process started listening (a restart)."""
        for record in records:
            status = str(record.status)
            if record.id in self._tasks or status not in _UNFINISHED:
                continue
            state = _TaskState(status)
            state.worker = record.worker
            self._tasks[record.id] = state
            self._status_gauges[status].inc()

    def attach(self, service: TaskService) -> TaskObserver:
        self._unsubscribe = service.subscribe(None, self.on_event)
        return self

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    @property
    def tracked(self) -> int:
        """Unfinished tasks this observer holds state for (bounded by the unfinished tasks)."""
        return len(self._tasks)

    # -- the listener -----------------------------------------------------------------------

    def on_event(self, event: RecordedEvent) -> None:
        try:
            self._observe(event)
        except Exception:  # a metrics bug must never break publishing to subscribers
            log.exception("metrics: could not observe event %s of task %s", event.type, event.task_id)

    def _observe(self, event: RecordedEvent) -> None:
        type_ = event.type
        counter = self._event_counters.get(type_)
        if counter is None:
            counter = self._event_counters.setdefault(type_, metrics.events.labels(type_))
        counter.inc()

        state = self._tasks.get(event.task_id)
        if state is None:
            state = self._tasks[event.task_id] = _TaskState(None)

        if type_ == EventType.PROGRESS:
            if state.last_step_at is not None:
                metrics.step_duration.observe(max(0.0, event.time - state.last_step_at))
            state.last_step_at = event.time
        elif type_ == EventType.QUEUE:
            message = event.message if isinstance(event.message, dict) else {}
            if "queue_length" in message:
                metrics.queue_length.set(message["queue_length"])
            if event.seq == 1:
                metrics.tasks_submitted.inc()
            if state.queued_at is None:
                state.queued_at = event.time
        elif type_ == EventType.ACCEPT:
            message = event.message if isinstance(event.message, dict) else {}
            state.worker = message.get("worker")
            state.accepted_at = event.time
            state.last_step_at = None
            if state.queued_at is not None:
                metrics.task_queue_wait.observe(max(0.0, event.time - state.queued_at))
        elif type_ == EventType.START:
            state.last_step_at = None  # the first step's interval would include the run's set-up

        if state.worker is not None:
            self._heartbeat(state.worker, event.time)

        new = status_after(type_, event.message)
        if new is None or str(new) == state.status:
            return
        self._move(event, state, str(new))

    def _heartbeat(self, worker: str, at: float) -> None:
        children = self._heartbeats.get(worker)
        if children is None:
            children = self._heartbeats[worker] = (
                metrics.worker_events.labels(worker),
                metrics.worker_last_event.labels(worker),
            )
        children[0].inc()
        children[1].set(at)

    def _move(self, event: RecordedEvent, state: _TaskState, new: str) -> None:
        previous = state.status
        if previous in _UNFINISHED:
            self._status_gauges[previous].dec()
        state.status = new
        final = TaskStatus(new).is_final
        if final:
            self._finished[new].inc()
            if state.accepted_at is not None:
                metrics.task_run.labels(new).observe(max(0.0, event.time - state.accepted_at))
            del self._tasks[event.task_id]
        else:
            self._status_gauges[new].inc()
        if self.log_status:
            self._log(event, state, previous, new)

    def _log(self, event: RecordedEvent, state: _TaskState, previous: str | None, new: str) -> None:
        fields: dict[str, Any] = {
            "task": event.task_id,
            "status": new,
            "previous": previous,
            "event": event.type,
            "seq": event.seq,
        }
        text = f"task {event.task_id} {new}"
        if state.worker is not None and new != "queued":
            fields["worker"] = state.worker
            text += f" on {state.worker}"
        message = event.message if isinstance(event.message, dict) else {}
        if event.type == EventType.ACCEPT and "attempt" in message:
            fields["attempt"] = message["attempt"]
            if message["attempt"] > 1:
                text += f" (attempt {message['attempt']})"
        if new == "failed":
            fields["code"] = message.get("code")
            fields["error"] = str(message.get("message", ""))[:300]
            text += f": {fields['code']}: {fields['error']}"
        elif new == "cancelled" and "reason" in message:
            fields["reason"] = str(message["reason"])[:300]
            text += f": {fields['reason']}"
        if final_seconds := self._seconds(state, event, new):
            fields["seconds"] = final_seconds
            text += f" in {final_seconds:.3f}s"
        log.info(text, extra=fields)

    @staticmethod
    def _seconds(state: _TaskState, event: RecordedEvent, new: str) -> float | None:
        if new in metrics.FINAL_STATUSES and state.queued_at is not None:
            return round(event.time - state.queued_at, 4)
        return None


async def refresh(service: TaskService, backend: Backend) -> None:
    """Gauges read from their source at scrape time: the queue's length, the webhook backlog and
    the live workers."""
    try:
        metrics.queue_length.set(await service.queue_length())
    except Exception:  # a broker that is briefly unreachable: keep the last known value
        log.debug("metrics: queue length unavailable", exc_info=True)
    try:
        backlog = await service.delivery_backlog()
    except Exception:
        log.debug("metrics: webhook backlog unavailable", exc_info=True)
    else:
        metrics.webhook_pending.set(backlog.pending)
        oldest = backlog.oldest_created_at
        metrics.webhook_oldest_pending.set(max(0.0, time.time() - oldest) if oldest is not None else 0.0)
    try:
        beats = await backend.live_workers()
    except Exception:
        log.debug("metrics: worker heartbeats unavailable", exc_info=True)
        return
    metrics.workers_live.set(sum(1 for beat in beats if beat.get("live", True)))
    metrics.worker_ready.clear()
    metrics.worker_busy.clear()
    for beat in beats:
        name = str(beat.get("name"))
        metrics.worker_ready.labels(name).set(1 if beat.get("ready") else 0)
        metrics.worker_busy.labels(name).set(1 if beat.get("task") else 0)
        if isinstance(beat.get("beat_at"), (int, float)):
            metrics.worker_last_heartbeat.labels(name).set(beat["beat_at"])


def counting_heartbeats(
    publish: Callable[[dict[str, Any]], Awaitable[None]],
) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """`publish`, counting each heartbeat this process's workers announce through it."""

    async def counted(beat: dict[str, Any]) -> None:
        await publish(beat)
        name = str(beat.get("name"))
        metrics.worker_heartbeats.labels(name).inc()
        metrics.worker_last_heartbeat.labels(name).set(time.time())

    return counted


async def observe(service: TaskService, *, log_status: bool = True) -> TaskObserver:
    """Start observing the service's events (call in the app's lifespan, before recovery)."""
    observer = TaskObserver(log_status=log_status)
    try:
        observer.seed(await service.unfinished())
    except Exception:
        log.warning("metrics: could not count unfinished tasks at start", exc_info=True)
    observer.attach(service)
    return observer
