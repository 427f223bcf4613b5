"""The Redis backend's writes against a real redis-server: a write (or a batch of them) resent
after a lost answer is recorded once, a stale fence stores no file, and an outage is
`StoreUnavailable`, not a redis error."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from harness.processes import RedisServer
from latentcast.server.backends.factory import Backend, open_backend
from latentcast.server.config import Settings
from latentcast.server.tasks.catalog import ModelCatalog, ServedModel
from latentcast.server.tasks.params import TaskParams
from latentcast.server.tasks.ports import Fence, NewEvent, StaleWrite, StoreUnavailable
from latentcast.server.tasks.service import TaskService
from tests.scaleout.outage import start_answering


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
async def backend(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Backend]:
    opened = open_backend(Settings(broker=redis_server.url, data_dir=tmp_path), follow_feed=False)
    await opened.start()
    yield opened
    await opened.close()


async def _claimed(backend: Backend) -> tuple[TaskService, str, Fence]:
    service = backend.task_service(ModelCatalog([ServedModel("builtin:tiny", ())]))
    record = await service.submit(TaskParams(prompt="fenced"))
    job, _ = await service.next_job("w1")
    assert job.task_id == record.id
    return service, record.id, job.fence


async def test_an_append_sent_again_with_its_write_id_is_recorded_once(backend):
    service, task_id, fence = await _claimed(backend)
    first = await service.emit(task_id, "task_accept", {"worker": "w1"}, fence=fence, write_id="w1:1:0")
    again = await service.emit(task_id, "task_accept", {"worker": "w1"}, fence=fence, write_id="w1:1:0")
    assert again.seq == first.seq
    assert [e.type for e in await service.events(task_id)] == ["task_queue", "task_accept"]
    other = await service.emit(task_id, "task_preprocess_start", {}, fence=fence, write_id="w1:1:1")
    assert other.seq == first.seq + 1


async def test_a_batch_sent_again_after_a_lost_answer_adds_only_what_it_lacked(backend):
    # the worker's event pump resends its whole batch; the events recorded before the answer was
    # lost keep their seq, the rest follow them
    service, task_id, fence = await _claimed(backend)
    step = [
        NewEvent("task_progress", {"step": 1}, 1.0, write_id="w1:1:0"),
        NewEvent("task_output", "Step 1/2", 1.0, write_id="w1:1:1"),
    ]
    first = await service.emit_many(task_id, step[:1], fence=fence)
    again = await service.emit_many(task_id, step, fence=fence)
    assert [e.seq for e in again] == [first[0].seq, first[0].seq + 1]
    assert [e.type for e in await service.events(task_id)] == ["task_queue", "task_progress", "task_output"]
    stale = Fence(fence.owner, fence.attempt - 1)
    with pytest.raises(StaleWrite):
        await service.emit_many(task_id, [NewEvent("task_output", "late", 2.0)], fence=stale)


async def test_a_file_is_stored_only_under_the_tasks_fence_and_dropped_with_a_cancel(backend):
    service, task_id, fence = await _claimed(backend)
    await backend.files.write(task_id, "0.png", b"mine", fence)
    with pytest.raises(StaleWrite, match="no longer owned"):
        await backend.files.write(task_id, "0.png", b"stale", Fence(fence.owner, fence.attempt - 1))
    assert await backend.files.read(task_id, "0.png") == b"mine"
    await service.emit(task_id, "task_cancel", {"reason": "test"}, fence=fence)
    assert await backend.files.read(task_id, "0.png") is None


async def test_an_outage_is_store_unavailable_and_the_first_call_after_it_succeeds(backend, redis_server):
    service, task_id, _ = await _claimed(backend)
    redis_server.stop(signal.SIGKILL)
    with pytest.raises(StoreUnavailable, match="Redis"):
        await service.get(task_id)
    start_answering(redis_server)
    assert (await service.get(task_id)).id == task_id  # the pool's dead connection is retried once
