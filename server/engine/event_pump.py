"""One run's event pump: what the device thread reports, written to the task service in order.

The device thread never touches the network or the store and never waits for the event loop. A
run's every report (an event, a step's report, an output file) is appended to the pump's one
`Handoff`, and the first append since the pump last took them wakes the pump once: one wake a
step, whatever the step reports. The pump writes what it took in order: the events between two
outputs in one `emit_many` (so that each subscriber's sender wakes once for all of them, and a
step's progress and its log line always travel together), each output before the events after
it, and each step's preview timing to the metrics (`time_preview`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from latentcast.server.engine.handoff import Handoff
from latentcast.server.engine.runner import StepReport, StopSignal
from latentcast.server.protocol.events import EventType
from latentcast.server.tasks.outage import Backoff, until_reachable
from latentcast.server.tasks.ports import FileStore, Job, NewEvent, StaleWrite
from latentcast.server.tasks.worker_service import WorkerService

log = logging.getLogger("latentcast.worker")

PreviewTimer = Callable[[str, float], None]
"""(preview method, seconds) of one preview, called on the event loop: the top wires it to the metrics."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Output:
    name: str
    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class _Step:
    at: float  # when the step reported, the time of both its events
    report: StepReport

    def events(self) -> tuple[NewEvent, NewEvent]:
        report = self.report
        return (
            NewEvent(str(EventType.PROGRESS), report.progress, self.at, report.preview),
            NewEvent(str(EventType.OUTPUT), report.log_line, self.at),
        )


class EventPump:
    """Carries one run's reports from the device thread to the task service (`runner.Reports`).

    Every write is fenced with the job's owner and attempt. If the task was taken over meanwhile
    (this worker was paused past the visibility timeout), the first refused write stops the run
    and nothing more is written: the new owner's events and files stay the only ones.

    While the backend is unreachable (a Redis outage, a full disk), the pump retries its oldest
    write until the backend returns (the run goes on meanwhile; its writes wait in order). Each
    event carries a write id, so an append whose answer was lost is not recorded twice when it is
    sent again. Any other failure of a write is this task's: the run is stopped, nothing more is
    written, and the worker records the task as failed (`failure`) and goes on to the next.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        service: WorkerService,
        files: FileStore,
        job: Job,
        stop: StopSignal,
        time_preview: PreviewTimer,
    ) -> None:
        self._service = service
        self._files = files
        self._job = job
        self._stop = stop
        self._time_preview = time_preview
        self._woken = asyncio.Event()
        self._reported: Handoff[NewEvent | _Step | _Output] = Handoff(loop, self._woken.set)
        self._finishing = False
        self._write_ids = (f"{job.fence.owner}:{job.fence.attempt}:{n}" for n in itertools.count())
        self._backoff = Backoff(f"task {job.task_id}: recording", log)
        self._task = loop.create_task(self._run())
        self.stale = False
        self.failure: str | None = None  # why a write failed for good: the task fails with it
        self.last_event = time.monotonic()

    # -- on the device thread: runner.Reports -------------------------------------------------

    def emit(self, type_: str, message: Any) -> None:
        self.last_event = time.monotonic()  # the device advances, whether or not the backend answers
        self._reported.append(NewEvent(str(type_), message, time.time()))

    def step(self, report: StepReport) -> None:
        self.last_event = time.monotonic()
        self._reported.append(_Step(time.time(), report))

    def save(self, name: str, data: bytes) -> str:
        self._reported.append(_Output(name, data))
        return self._files.url(self._job.task_id, name)

    # -- on the event loop --------------------------------------------------------------------

    async def finish(self) -> None:
        """Wait until everything reported so far is written (or given up); the pump then ends."""
        self._finishing = True
        self._woken.set()
        await self._task

    def abandon(self) -> None:
        """Give up the writes still waiting for the backend (a shutdown that cannot wait any longer)."""
        self._task.cancel()

    async def _run(self) -> None:
        while not self._finishing:
            await self._woken.wait()
            self._woken.clear()
            await self._write_all(self._reported.take())
        await self._write_all(self._reported.take())  # reported after the last wake, before `finish`

    async def _write_all(self, reported: list[NewEvent | _Step | _Output]) -> None:
        events: list[NewEvent] = []
        for item in reported:
            if isinstance(item, _Output):
                await self._write_events(events)
                events = []
                await self._write(functools.partial(self._files.write, self._job.task_id, item.name, item.data))
            elif isinstance(item, _Step):
                events += item.events()
                if item.report.preview_time is not None:
                    self._time_preview(item.report.preview_time.method, item.report.preview_time.seconds)
            else:
                events.append(item)
        await self._write_events(events)

    async def _write_events(self, events: list[NewEvent]) -> None:
        if events:
            named = [dataclasses.replace(event, write_id=next(self._write_ids)) for event in events]
            await self._write(functools.partial(self._service.emit_many, self._job.task_id, named))

    async def _write(self, write: Callable[..., Any]) -> None:
        """Run one fenced write (`write(fence=...)`), riding out an outage, unless writing has stopped."""
        if self.stale or self.failure is not None:
            return
        job = self._job
        try:
            await until_reachable(functools.partial(write, fence=job.fence), self._backoff)
        except StaleWrite:
            self.stale = True
            self._stop.set("another worker took this task over")
            log.warning("task %s was taken over; this worker stops writing to it", job.task_id)
        except Exception as failure:
            log.exception("task %s: a write failed; the task fails", job.task_id)
            self.failure = f"its events could not be recorded ({type(failure).__name__}: {failure})"
            self._stop.set(self.failure)
