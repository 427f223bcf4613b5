"""The SQLite store on a disk that fills up and frees again: every failure is `StoreUnavailable`,
changes nothing (no row, no seq handed out, no cached record run ahead), and the next write after
the disk frees continues the log with no hole."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from latentcast.server.backends.sqlite_store import SQLiteStore
from latentcast.server.protocol.events import EncodedPreview
from latentcast.server.tasks.params import TaskParams
from latentcast.server.tasks.ports import NewEvent, StoreUnavailable
from latentcast.server.tasks.record import TaskRecord
from tests.small_disk import SmallDisk

# A page of preview bytes an event: a full disk shows within a few dozen appends.
PREVIEW = EncodedPreview("jpeg", 64, 64, 512, 512, bytes(range(256)) * 16)


def new_record(task_id: str) -> TaskRecord:
    return TaskRecord(id=task_id, token=f"token-{task_id}", params=TaskParams(prompt="a red circle"),
                      model="builtin:tiny", seed=1, created_at=time.time())


async def append_until_full(store: SQLiteStore, task_id: str) -> int:
    """Append progress events until the disk refuses one; the seq of the last one recorded."""
    last = (await store.get(task_id)).last_seq
    for _ in range(100_000):
        try:
            last = (await store.append(task_id, "task_progress", {"step": last}, time=time.time(), preview=PREVIEW)).seq
        except StoreUnavailable as refused:
            assert "database or disk is full" in str(refused)
            return last
    raise AssertionError("the disk never filled")


@pytest.fixture
def disk(tmp_path: Path):
    with SmallDisk(tmp_path / "disk", size="4m") as mounted:
        yield mounted


async def test_a_refused_append_hands_out_no_seq_and_the_log_goes_on_without_a_hole(disk: SmallDisk) -> None:
    store = SQLiteStore(disk.path / "tasks.db")
    await store.create(new_record("a"))
    await store.append("a", "task_queue", {"position": 1, "queue_length": 1}, time=time.time())
    disk.fill()
    last = await append_until_full(store, "a")
    for _ in range(3):  # refused again and again: the seq stays where it was
        with pytest.raises(StoreUnavailable):
            await store.append("a", "task_progress", {"step": 0}, time=time.time(), preview=PREVIEW)
        assert (await store.get("a")).last_seq == last
    disk.free()
    event = await store.append("a", "task_progress", {"step": last}, time=time.time())
    assert event.seq == last + 1
    assert [e.seq for e in await store.events("a")] == list(range(1, last + 2))
    await store.close()
    reopened = SQLiteStore(disk.path / "tasks.db")  # what is on disk says the same
    assert (await reopened.get("a")).last_seq == last + 1
    assert [e.seq for e in await reopened.events("a")] == list(range(1, last + 2))
    await reopened.close()


async def test_a_task_created_on_a_full_disk_leaves_nothing_behind(disk: SmallDisk) -> None:
    store = SQLiteStore(disk.path / "tasks.db")
    await store.create(new_record("a"))
    await store.append("a", "task_queue", {"position": 1, "queue_length": 1}, time=time.time())
    disk.fill()
    await append_until_full(store, "a")
    await store.create(new_record("b"))
    with pytest.raises(StoreUnavailable):  # its first event: the task is written with it or not at all
        await store.append("b", "task_queue", {"position": 1, "queue_length": 1}, time=time.time())
    assert await store.get("b") is None
    assert await store.get_by_token("token-b") is None
    assert [r.id for r in (await store.list(status=None, limit=10, cursor=None, owner=None)).items] == ["a"]
    with pytest.raises(StoreUnavailable):
        await store.set_cancel_requested("a")
    assert not (await store.get("a")).cancel_requested
    with pytest.raises(StoreUnavailable):
        await store.check()
    disk.free()
    await store.check()
    await store.set_cancel_requested("a")
    assert (await store.get("a")).cancel_requested
    await store.close()


async def test_a_steps_events_written_together_are_recorded_together_or_not_at_all(disk: SmallDisk) -> None:
    """A worker records a step's progress (with its preview) and its log line in one `append_many`:
    one transaction, so a full disk refuses both and the next try records both, in order."""
    store = SQLiteStore(disk.path / "tasks.db")
    await store.create(new_record("a"))
    await store.append("a", "task_queue", {"position": 1, "queue_length": 1}, time=time.time())
    disk.fill()
    last = await append_until_full(store, "a")
    step = [
        NewEvent("task_progress", {"step": last}, time.time(), PREVIEW),
        NewEvent("task_output", "Step 1/1", time.time()),
        NewEvent("task_start", {}, time.time()),
    ]
    with pytest.raises(StoreUnavailable):
        await store.append_many("a", step)
    assert (await store.get("a")).last_seq == last
    disk.free()
    recorded = await store.append_many("a", step)
    assert [(e.seq, e.type) for e in recorded] == [(last + 1, "task_progress"), (last + 2, "task_output"), (last + 3, "task_start")]
    await store.close()
    reopened = SQLiteStore(disk.path / "tasks.db")  # what is on disk says the same
    record = await reopened.get("a")
    assert (record.last_seq, str(record.status)) == (last + 3, "running")
    events = await reopened.events("a", last)
    assert [(e.seq, e.type, e.message) for e in events] == [
        (last + 1, "task_progress", {"step": last}), (last + 2, "task_output", "Step 1/1"), (last + 3, "task_start", {}),
    ]
    assert events[0].preview == PREVIEW and events[1].preview is None
    await reopened.close()
