"""Reads of one page of a task's log that many subscribers ask for at once are one store read,
over the real SQLite store: each caller gets the page, none gets a page read before it asked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from latentcast.server.backends.sqlite_store import SQLiteStore
from latentcast.server.protocol.events import RecordedEvent
from latentcast.server.tasks.params import TaskParams
from latentcast.server.tasks.ports import StoreUnavailable
from latentcast.server.tasks.record import TaskRecord
from latentcast.server.tasks.shared_pages import SharedPages

TASK = "0123456789abcdef"


class CountedLog:
    """The real store's `events`, counted; while `hold` is clear a read waits after reading, before
    it answers (a read in flight whose page is already taken), and then fails if told to."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.reads: list[tuple[str, int, int | None]] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.failure: Exception | None = None

    async def events(self, task_id: str, since: int = 0, *, limit: int | None = None) -> list[RecordedEvent]:
        self.reads.append((task_id, since, limit))
        page = await self.store.events(task_id, since, limit=limit)
        await self.hold.wait()
        if self.failure is not None:
            raise self.failure
        return page


@pytest.fixture
async def log(tmp_path: Path) -> CountedLog:
    store = SQLiteStore(tmp_path / "tasks.db")
    await store.create(TaskRecord(TASK, "tok", TaskParams(prompt="p", width=64, height=64), "m", 3, created_at=1000.0))
    for step in range(5):
        await store.append(TASK, "task_output", f"line {step}", time=1000.0)
    return CountedLog(store)


def seqs(page: list[RecordedEvent]) -> list[int]:
    return [event.seq for event in page]


async def in_flight(pages: SharedPages, log: CountedLog) -> asyncio.Task[list[RecordedEvent]]:
    """A first caller's read of page (TASK, 0, 128), taken from the store and held there."""
    log.hold.clear()
    first = asyncio.create_task(pages.events(TASK, 0, limit=128))
    while not log.reads:
        await asyncio.sleep(0)
    return first


async def test_callers_who_ask_while_a_page_is_read_share_one_read_of_it(log):
    pages = SharedPages(log)
    first = await in_flight(pages, log)
    callers = [asyncio.create_task(pages.events(TASK, 0, limit=128)) for _ in range(50)]
    await asyncio.sleep(0)  # they have all asked
    assert len(log.reads) == 1  # one read of a page at a time: theirs waits for the first
    log.hold.set()
    answers = await asyncio.gather(*callers)
    assert seqs(await first) == [1, 2, 3, 4, 5]
    assert log.reads == [(TASK, 0, 128)] * 2  # the first caller's, and one for the fifty
    assert all(page is answers[0] for page in answers) and seqs(answers[0]) == [1, 2, 3, 4, 5]
    # nothing is kept once answered, and another page (another since) is a read of its own
    later, again = await asyncio.gather(pages.events(TASK, 3, limit=128), pages.events(TASK, 0, limit=128))
    assert seqs(later) == [4, 5] and seqs(again) == [1, 2, 3, 4, 5]
    assert log.reads[2:] == [(TASK, 3, 128), (TASK, 0, 128)]


async def test_a_caller_never_joins_a_read_that_left_before_it_asked(log):
    # The subscriber that asks now may have begun listening after the read in flight read the
    # log: an event recorded in between must be in the page it gets.
    pages = SharedPages(log)
    first = await in_flight(pages, log)
    await log.store.append(TASK, "task_output", "recorded meanwhile", time=1000.0)
    late = [asyncio.create_task(pages.events(TASK, 0, limit=128)) for _ in range(20)]
    log.hold.set()
    assert seqs(await first) == [1, 2, 3, 4, 5]
    answers = await asyncio.gather(*late)
    assert all(seqs(page) == [1, 2, 3, 4, 5, 6] for page in answers)
    assert len(log.reads) == 2


async def test_callers_that_leave_do_not_cancel_the_read_for_the_others(log):
    pages = SharedPages(log)
    first = await in_flight(pages, log)
    leaving = asyncio.create_task(pages.events(TASK, 0, limit=128))
    staying = asyncio.create_task(pages.events(TASK, 0, limit=128))
    await asyncio.sleep(0)  # both have joined the read waiting behind the first
    first.cancel()  # its socket closed mid-read
    leaving.cancel()
    log.hold.set()
    assert seqs(await staying) == [1, 2, 3, 4, 5]
    assert first.cancelled() and leaving.cancelled() and len(log.reads) == 2


async def test_a_failed_read_fails_each_of_its_callers_and_the_next_caller_reads_again(log):
    pages = SharedPages(log)
    first = await in_flight(pages, log)
    callers = [asyncio.create_task(pages.events(TASK, 0, limit=128)) for _ in range(3)]
    log.failure = StoreUnavailable("Redis: connection refused")
    log.hold.set()
    answers = await asyncio.gather(first, *callers, return_exceptions=True)
    assert [str(a) for a in answers] == ["Redis: connection refused"] * 4 and len(log.reads) == 2
    log.failure = None
    assert seqs(await pages.events(TASK, 0, limit=128)) == [1, 2, 3, 4, 5]
    assert len(log.reads) == 3
