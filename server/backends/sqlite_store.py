"""The embedded task store: SQLite in WAL mode, one connection owned by the event loop.

Each write of events is one short transaction (their rows + the record's row + the newest preview
+ the webhook deliveries they cause, server.backends.sqlite_outbox; one event, or the few a worker
reports at once), so an event a subscriber has seen is already
on disk, and so is its delivery: after a crash (even kill -9) the log still holds them.
`synchronous=NORMAL` in WAL mode survives a process crash; only a power loss can drop the last
commits, which is the trade every embedded queue makes for sub-millisecond writes.

What the disk can do to SQLite (full, read-only, an I/O error, locked, a corrupt page) is raised
as `StoreUnavailable` (server.backends.sqlite_disk), as a Redis outage is: the API answers 503 and changes nothing, a worker
waits and writes again. A write that failed left neither its rows nor its effect on the cached
record behind (SQLite may already have rolled the transaction back itself, as it does on a full
disk), so the write that follows gets the same seq: the log never has a hole.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from time import time as now
from typing import Any

import orjson

from latentcast.server.backends import sqlite_outbox
from latentcast.server.backends.cursors import decode_cursor, encode_cursor
from latentcast.server.backends.sqlite_disk import disk_errors, transaction
from latentcast.server.protocol.events import EncodedPreview, RecordedEvent, TaskStatus
from latentcast.server.tasks.outbox import plan_delivery
from latentcast.server.tasks.ports import Fence, NewEvent, Page, StoreUnavailable
from latentcast.server.tasks.record import TaskRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    owner TEXT,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_time ON tasks (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status, created_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS events (
    task_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    time REAL NOT NULL,
    message BLOB NOT NULL,
    PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS previews (
    task_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    format TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    data BLOB NOT NULL,
    image_width INTEGER,
    image_height INTEGER
);
CREATE TABLE IF NOT EXISTS inputs (
    task_id TEXT NOT NULL,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (task_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    expires_at REAL NOT NULL,
    data BLOB NOT NULL
);
"""
# Columns a database made by an earlier release lacks, added in place when it is opened (SQLite adds
# a column without rewriting the table). NULL in them is what such a database holds: a preview
# stored before previews carried their image's size was as large as its image, so it reads as that.
_ADDED_COLUMNS = (("previews", "image_width", "INTEGER"), ("previews", "image_height", "INTEGER"))

_FINAL = tuple(str(s) for s in TaskStatus if s.is_final)
# Less free space than this under the database and no new task is taken (`check`).
MIN_FREE_BYTES = 1 << 20

class SQLiteStore:
    def __init__(self, path: Path) -> None:
        self._path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        with disk_errors():
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # A WAL checkpointed every 100 pages (SQLite's default is 1,000) and truncated back to
            # 1 MiB: on a full disk SQLite writes on into its WAL's free space until a write needs
            # a new page, so a small WAL shows a full disk within a few writes, not a few thousand.
            # The cost is one checkpoint (one fsync) per 100 pages, about one per task.
            self._db.execute("PRAGMA wal_autocheckpoint=100")
            self._db.execute(f"PRAGMA journal_size_limit={1 << 20}")
            self._db.executescript(_SCHEMA + sqlite_outbox.SCHEMA)
            _add_missing_columns(self._db)
        self.outbox = sqlite_outbox.SQLiteOutbox(self._db)
        # Records of unfinished tasks stay in memory: every event updates one, and this process
        # is the only writer, so the cache cannot go stale.
        self._active: dict[str, TaskRecord] = {}
        # Created, not yet written: a task goes to disk with its first event (TaskService.submit
        # appends `task_queue` next), in one transaction, so a submission the disk refuses leaves
        # no task behind that nobody was told of.
        self._unwritten: dict[str, TaskRecord] = {}
        self._unwritten_inputs: dict[str, Mapping[str, bytes]] = {}

    @contextlib.contextmanager
    def _transaction(self, task_id: str) -> Iterator[sqlite3.Connection]:
        """One write, all or nothing. On any failure the task's cached record, which the caller
        may already have advanced, is dropped: the next read loads it as the table has it."""
        try:
            with transaction(self._db) as db:
                yield db
        except BaseException:
            self._active.pop(task_id, None)
            self._unwritten.pop(task_id, None)
            self._unwritten_inputs.pop(task_id, None)
            raise

    async def create(self, record: TaskRecord, inputs: Mapping[str, bytes] | None = None) -> None:
        self._unwritten[record.id] = record
        if inputs:
            self._unwritten_inputs[record.id] = inputs

    async def input(self, task_id: str, name: str) -> bytes | None:
        if (waiting := self._unwritten_inputs.get(task_id)) is not None:
            return waiting.get(name)
        with disk_errors():
            row = self._db.execute("SELECT data FROM inputs WHERE task_id = ? AND name = ?", (task_id, name)).fetchone()
        return row[0] if row else None

    async def save_upload(self, upload_id: str, data: bytes, *, expires_in: float) -> None:
        at = now()
        with transaction(self._db) as db:
            db.execute("DELETE FROM uploads WHERE expires_at < ?", (at,))  # the expired go as new ones come
            db.execute("INSERT INTO uploads (id, expires_at, data) VALUES (?, ?, ?)", (upload_id, at + expires_in, data))

    async def upload(self, upload_id: str) -> bytes | None:
        with disk_errors():
            row = self._db.execute(
                "SELECT data FROM uploads WHERE id = ? AND expires_at >= ?", (upload_id, now())
            ).fetchone()
        return row[0] if row else None

    async def get(self, task_id: str) -> TaskRecord | None:
        if (record := self._active.get(task_id)) is not None:
            return dataclasses.replace(record)
        with disk_errors():
            row = self._db.execute("SELECT record FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return TaskRecord.from_json(row[0]) if row else None

    async def get_by_token(self, token: str) -> TaskRecord | None:
        with disk_errors():
            row = self._db.execute("SELECT id FROM tasks WHERE token = ?", (token,)).fetchone()
        return await self.get(row[0]) if row else None

    async def list(
        self, *, status: TaskStatus | None, limit: int, cursor: str | None, owner: str | None
    ) -> Page:
        where: list[str] = []
        args: list[str | float] = []
        if status is not None:
            where.append("status = ?")
            args.append(str(status))
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if cursor is not None:
            created_at, task_id = decode_cursor(cursor)
            where.append("(created_at, id) < (?, ?)")
            args += [created_at, task_id]
        sql = "SELECT id, record FROM tasks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        with disk_errors():
            rows = self._db.execute(sql, (*args, limit + 1)).fetchall()
        items = [self._active.get(task_id) or TaskRecord.from_json(blob) for task_id, blob in rows[:limit]]
        next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None
        return Page(items=[dataclasses.replace(r) for r in items], next_cursor=next_cursor)

    async def append(
        self,
        task_id: str,
        type_: str,
        message: Any,
        *,
        time: float,
        preview: EncodedPreview | None = None,
        fence: Fence | None = None,
        write_id: str | None = None,
    ) -> RecordedEvent:
        [event] = await self.append_many(task_id, [NewEvent(type_, message, time, preview, write_id)], fence=fence)
        return event

    async def append_many(self, task_id: str, events: Sequence[NewEvent], *, fence: Fence | None = None) -> builtins.list[RecordedEvent]:
        """The events in one transaction: a step's progress and its log line cost one commit and one
        write of the task's record, not two (the API process's CPU per step, bench/README.md)."""
        # `fence` needs no check here: in one process no other worker can take a task over; nor
        # `write_id`: a local database never loses the answer to a write it committed.
        if not events:
            return []
        first = task_id in self._unwritten
        record = self._unwritten.get(task_id) or self._active.get(task_id) or await self.get(task_id)
        if record is None:
            raise KeyError(task_id)
        recorded = []
        with self._transaction(task_id) as db:
            for new in events:
                event = RecordedEvent(task_id, record.last_seq + 1, new.type, new.time, new.message, new.preview)
                record.apply(event)
                delivery = plan_delivery(record, event)  # (before the record is written: it may note it)
                db.execute(
                    "INSERT INTO events (task_id, seq, type, time, message) VALUES (?, ?, ?, ?, ?)",
                    (task_id, event.seq, event.type, event.time, orjson.dumps(event.message)),
                )
                if delivery is not None:
                    sqlite_outbox.add(db, delivery)
                if (preview := event.preview) is not None:
                    db.execute(
                        "INSERT OR REPLACE INTO previews"
                        " (task_id, seq, format, width, height, image_width, image_height, data)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (task_id, event.seq, preview.format, preview.width, preview.height, preview.image_width,
                         preview.image_height, preview.data),
                    )
                recorded.append(event)
            if first:
                db.execute(
                    "INSERT INTO tasks (id, token, owner, status, created_at, record) VALUES (?, ?, ?, ?, ?, ?)",
                    (task_id, record.token, record.owner, str(record.status), record.created_at, record.to_json()),
                )
                db.executemany(
                    "INSERT INTO inputs (task_id, name, data) VALUES (?, ?, ?)",
                    [(task_id, name, data) for name, data in self._unwritten_inputs.get(task_id, {}).items()],
                )
            else:
                db.execute(
                    "UPDATE tasks SET status = ?, record = ? WHERE id = ?",
                    (str(record.status), record.to_json(), task_id),
                )
        self._unwritten.pop(task_id, None)
        self._unwritten_inputs.pop(task_id, None)
        if record.status.is_final:
            self._active.pop(task_id, None)
        else:
            self._active[task_id] = record
        return recorded

    async def events(self, task_id: str, since: int = 0, *, limit: int | None = None) -> builtins.list[RecordedEvent]:
        with disk_errors():
            rows = self._db.execute(
                "SELECT seq, type, time, message FROM events WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (task_id, since, -1 if limit is None else limit),
            ).fetchall()
            newest = self._db.execute(
                "SELECT seq, format, width, height, image_width, image_height, data FROM previews"
                " WHERE task_id = ? AND seq > ?",
                (task_id, since),
            ).fetchone()
        events = []
        for seq, type_, time, message in rows:
            preview = _preview(*newest[1:]) if newest is not None and newest[0] == seq else None
            events.append(RecordedEvent(task_id, seq, type_, time, orjson.loads(message), preview))
        return events

    async def set_cancel_requested(self, task_id: str) -> None:
        record = self._active.get(task_id) or await self.get(task_id)
        if record is None:
            raise KeyError(task_id)
        with self._transaction(task_id) as db:
            record.cancel_requested = True
            db.execute("UPDATE tasks SET record = ? WHERE id = ?", (record.to_json(), task_id))

    async def unfinished(self) -> builtins.list[TaskRecord]:
        marks = ",".join("?" * len(_FINAL))
        with disk_errors():
            rows = self._db.execute(
                f"SELECT record FROM tasks WHERE status NOT IN ({marks}) ORDER BY created_at, id", _FINAL
            ).fetchall()
        records = [TaskRecord.from_json(blob) for (blob,) in rows]
        for record in records:
            self._active[record.id] = record
        return [dataclasses.replace(r) for r in records]

    async def delete(self, task_id: str) -> None:
        with self._transaction(task_id) as db:
            for table in ("events", "previews", "deliveries", "inputs"):
                db.execute(f"DELETE FROM {table} WHERE task_id = ?", (task_id,))
            db.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
        self._active.pop(task_id, None)

    async def expired(self, before: float, limit: int) -> builtins.list[str]:
        marks = ",".join("?" * len(_FINAL))
        with disk_errors():
            rows = self._db.execute(
                f"SELECT id FROM tasks WHERE status IN ({marks}) AND created_at < ? ORDER BY created_at LIMIT ?",
                (*_FINAL, before, limit),
            ).fetchall()
        return [task_id for (task_id,) in rows]

    async def check(self) -> None:
        """Raise `StoreUnavailable` while the file system under the database is read-only or has
        less than MIN_FREE_BYTES free. SQLite itself writes on for a while on a full disk (into
        its WAL's and its file's free pages) until a write needs one more page; a task needs many
        more (its events, its pictures), so a new one is refused before it starts rather than
        stopped halfway, and /readyz turns a load balancer away in time."""
        folder = self._path.parent
        try:
            stats = os.statvfs(folder)
        except OSError as failure:
            raise StoreUnavailable(f"SQLite: {folder}: {failure.strerror or failure}") from failure
        if stats.f_flag & os.ST_RDONLY:
            raise StoreUnavailable(f"SQLite: the file system under {folder} is read-only")
        free = stats.f_bavail * stats.f_frsize
        if free < MIN_FREE_BYTES:
            raise StoreUnavailable(f"SQLite: the disk under {folder} is full ({free} bytes free)")

    async def close(self) -> None:
        self._db.close()


def _add_missing_columns(db: sqlite3.Connection) -> None:
    for table, column, kind in _ADDED_COLUMNS:
        if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def _preview(
    format: str, width: int, height: int, image_width: int | None, image_height: int | None, data: bytes
) -> EncodedPreview:
    """A stored preview; one stored without its image's size (`_ADDED_COLUMNS`) was its image's size."""
    return EncodedPreview(format, width, height, image_width or width, image_height or height, data)
