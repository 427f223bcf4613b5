"""The replay+live feed over the real SQLite store and local bus: every event once, in seq order,
the stored log a page per pull, whatever arrives live meanwhile."""

from __future__ import annotations

from pathlib import Path

from latentcast.server.backends.local_bus import LocalBus
from latentcast.server.backends.sqlite_store import SQLiteStore
from latentcast.server.protocol.events import Event
from latentcast.server.tasks.feed import REPLAY_PAGE, TaskFeed
from latentcast.server.tasks.params import TaskParams
from latentcast.server.tasks.record import TaskRecord


class Log:
    """One task's store and bus, and what a feed of it delivered."""

    def __init__(self, folder: Path) -> None:
        self.store = SQLiteStore(folder / "tasks.db")
        self.bus = LocalBus()
        self.task_id = "0123456789abcdef"
        self.delivered: list[tuple[int, bool]] = []  # (seq, replayed)
        self.ready_calls = 0

    async def create(self) -> None:
        params = TaskParams(prompt="p", width=64, height=64)
        await self.store.create(TaskRecord(self.task_id, "tok", params, "m", 3, created_at=1000.0))

    async def append(self, *, publish: bool = True, terminal: bool = False) -> Event:
        kind, message = ("task_cancel", {"reason": "done"}) if terminal else ("task_output", "a line")
        event = await self.store.append(self.task_id, kind, message, time=1000.0)
        if publish:
            self.bus.publish(event)
        return event

    def feed(self, since: int = 0) -> TaskFeed:
        def deliver(event: Event, *, replayed: bool) -> None:
            self.delivered.append((event.seq, replayed))

        def ready() -> None:
            self.ready_calls += 1

        return TaskFeed(self.store, self.bus, self.task_id, since, deliver, ready)

    def seqs(self) -> list[int]:
        return [seq for seq, _ in self.delivered]


async def test_replay_comes_a_page_per_pull_and_live_events_follow_without_gap_or_duplicate(tmp_path: Path) -> None:
    log = Log(tmp_path)
    await log.create()
    for _ in range(3 * REPLAY_PAGE):
        await log.append()
    feed = log.feed(since=5)
    feed.start()
    assert log.delivered == []  # nothing read until the transport asks
    await feed.pull()
    assert log.seqs() == list(range(6, 6 + REPLAY_PAGE)) and all(replayed for _, replayed in log.delivered)
    for _ in range(REPLAY_PAGE + 10):  # more live events than the feed holds: the rest it reads again
        await log.append()
    while feed.replaying:
        await feed.pull()
    last = (await log.append(terminal=True)).seq
    assert log.seqs() == list(range(6, last + 1))
    assert log.delivered[-1] == (last, False)  # caught up: the terminal event came live
    assert feed.done and not feed.replaying


async def test_a_hole_in_the_live_events_sends_the_feed_back_to_the_store(tmp_path: Path) -> None:
    log = Log(tmp_path)
    await log.create()
    await log.append()
    feed = log.feed()
    feed.start()
    await feed.pull()
    assert not feed.replaying and log.seqs() == [1]
    await log.append(publish=False)  # recorded, but its live copy is lost (another process's bus)
    await log.append()
    assert feed.replaying and log.ready_calls == 1 and log.seqs() == [1]
    await log.append(terminal=True)  # waits in the feed meanwhile
    await feed.pull()
    assert log.seqs() == [1, 2, 3, 4] and feed.done
