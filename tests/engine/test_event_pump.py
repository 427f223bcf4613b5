"""A run's reports, made on a device thread, reach the task service in order with one wake of the loop:
each step's progress beside its log line, its preview's timing to the metrics, an output before the
event that names it. A real task service over the SQLite backend records them."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from latentcast.server.backends.factory import open_backend
from latentcast.server.config import Settings
from latentcast.server.engine.event_pump import EventPump
from latentcast.server.engine.runner import PreviewTime, StepReport, StopSignal
from latentcast.server.protocol.events import EncodedPreview, EventType, RecordedEvent
from latentcast.server.tasks.catalog import ModelCatalog, ServedModel
from latentcast.server.tasks.params import TaskParams
from latentcast.server.tasks.ports import Fence, NewEvent
from latentcast.server.tasks.service import TaskService
from tests.engine.test_handoff import WakeCountingLoop


class CountingWrites:
    """The task service, counting the `emit_many` calls the pump makes of it (its writes)."""

    def __init__(self, service: TaskService) -> None:
        self.service = service
        self.batches: list[list[str]] = []

    async def emit_many(
        self, task_id: str, events: Sequence[NewEvent], *, fence: Fence | None = None
    ) -> list[RecordedEvent]:
        self.batches.append([event.type for event in events])
        return await self.service.emit_many(task_id, events, fence=fence)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.service, name)


def step(number: int, preview: EncodedPreview | None = None, seconds: float | None = None) -> StepReport:
    spent = PreviewTime("latent2rgb", seconds) if seconds is not None else None
    return StepReport({"step": number, "steps": 3}, preview, f"Step {number}/3", spent)


def test_a_runs_reports_are_written_in_order_after_one_wake(tmp_path: Path) -> None:
    loop = WakeCountingLoop()
    backend = open_backend(Settings(data_dir=tmp_path))
    service = backend.task_service(ModelCatalog([ServedModel("builtin:tiny")]))
    writes = CountingWrites(service)
    timings: list[tuple[str, float]] = []
    preview = EncodedPreview("jpeg", 8, 8, 64, 64, b"\xff\xd8 a preview")

    async def main() -> tuple[list[RecordedEvent], bytes | None]:
        task = await service.submit(TaskParams(prompt="p", width=64, height=64, num_inference_steps=3))
        job, _ = await service.next_job("w")
        pump = EventPump(loop, writes, backend.files, job, StopSignal(), lambda method, s: timings.append((method, s)))
        wakes_before = loop.wakes

        def run() -> None:  # the device thread's reports of a whole run, while the loop is held
            pump.emit(EventType.START, {"steps": 3})
            pump.step(step(1, preview, 0.25))
            pump.step(step(2))
            pump.step(step(3, preview, 0.5))
            url = pump.save("0.png", b"the picture")
            pump.emit(EventType.POSTPROCESS_END, [{"name": "0.png", "url": url}])

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        assert loop.wakes - wakes_before == 1  # (the store's own thread wakes the loop after this)
        await pump.finish()
        return await service.events(task.id), await backend.files.read(task.id, "0.png")

    try:
        events, picture = loop.run_until_complete(main())
    finally:
        loop.run_until_complete(backend.close())
        loop.close()
    steps = ["task_progress", "task_output"] * 3
    assert writes.batches == [["task_start", *steps], ["task_postprocess_end"]]  # the output between them
    assert [event.type for event in events] == ["task_queue", "task_start", *steps, "task_postprocess_end"]
    assert [event.seq for event in events] == list(range(1, 10))
    assert [event.message for event in events if event.type == "task_output"] == ["Step 1/3", "Step 2/3", "Step 3/3"]
    progress = [event for event in events if event.type == "task_progress"]
    assert [event.message["step"] for event in progress] == [1, 2, 3]
    assert [event.preview is not None for event in progress] == [False, False, True]  # the newest keeps its image
    assert picture == b"the picture"
    assert timings == [("latent2rgb", 0.25), ("latent2rgb", 0.5)]
