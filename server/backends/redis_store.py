"""Task records and event logs in Redis, shared by every front-end and worker.

An event is appended by one Lua script that checks, atomically, that the writer still owns the
task (the fence) and that nobody appended since it read the record (compare-and-set on
`last_seq`), then writes the event to the task's stream and to the feed, the folded record, the
status index, the newest preview and the webhook delivery the event causes
(server.backends.redis_outbox). The record is folded in Python by `TaskRecord.apply`, and the
delivery planned by `plan_delivery`, the same code the SQLite store uses, so both backends
describe a task identically.
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from latentcast.server.backends.cursors import decode_cursor, encode_cursor
from latentcast.server.backends.redis_client import StreamEntry
from latentcast.server.backends.redis_names import RedisNames
from latentcast.server.backends.redis_outbox import APPEND_DELIVERY, RECENT_MAX, RedisOutbox
from latentcast.server.protocol.events import EncodedPreview, RecordedEvent, TaskStatus
from latentcast.server.tasks.outbox import NewDelivery, plan_delivery
from latentcast.server.tasks.ports import Fence, NewEvent, Page, StaleWrite, append_each
from latentcast.server.tasks.record import TaskRecord

_APPEND = APPEND_DELIVERY + """
local task, events, preview, feed, old_index, new_index, token_key, files = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
if redis.call('EXISTS', task) == 0 then return 'missing' end
local owner, attempt = ARGV[8], ARGV[9]
if owner ~= '' then
  local fence = redis.call('HMGET', task, 'fence_owner', 'fence_attempt')
  if fence[1] ~= owner or fence[2] ~= attempt then return 'stale' end
end
if ARGV[17] ~= '' and redis.call('HGET', task, 'last_write') == ARGV[17] then return 'done' end
if redis.call('HGET', task, 'last_seq') ~= ARGV[1] then return 'conflict' end
local seq = ARGV[2]
redis.call('XADD', events, 'MAXLEN', '~', ARGV[14], '0-' .. seq, 'type', ARGV[3], 'time', ARGV[4], 'message', ARGV[5])
redis.call('HSET', task, 'last_seq', seq, 'record', ARGV[6], 'status', ARGV[7], 'last_write', ARGV[17])
if ARGV[7] == 'cancelled' or ARGV[7] == 'failed' then
  -- outputs an earlier attempt stored before it lost the task belong to no result
  for _, key in ipairs(redis.call('SMEMBERS', files)) do redis.call('DEL', key) end
  redis.call('DEL', files)
end
if old_index ~= new_index then
  redis.call('ZREM', old_index, ARGV[11])
  redis.call('ZADD', new_index, ARGV[12], ARGV[11])
end
local entry = {'task', ARGV[11], 'seq', seq, 'type', ARGV[3], 'time', ARGV[4], 'message', ARGV[5]}
if ARGV[10] ~= '' then
  redis.call('HSET', preview, 'seq', seq, 'meta', ARGV[10], 'data', ARGV[15])
  table.insert(entry, 'preview'); table.insert(entry, ARGV[10])
  table.insert(entry, 'data'); table.insert(entry, ARGV[15])
end
redis.call('XADD', feed, 'MAXLEN', '~', ARGV[16], '*', unpack(entry))
if ARGV[18] ~= '' then
  add_delivery(task, KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[13],
    {ARGV[18], ARGV[11], seq, ARGV[3], ARGV[19], ARGV[20], ARGV[21], ARGV[22], ARGV[23], ARGV[24]})
end
local retention = tonumber(ARGV[13])
if retention > 0 then
  for _, key in ipairs({task, events, preview, token_key}) do redis.call('EXPIRE', key, retention) end
end
return 'ok'
"""


# The task hash's field of an input picture: "input:image", "input:mask".
_INPUT = "input:"


def _delivery_args(delivery: NewDelivery | None) -> list[str]:
    """ARGV 18-24 of `_APPEND`: the delivery the event causes, or an empty id for none."""
    if delivery is None:
        return [""] * 7
    d = delivery
    return [d.id, d.url, d.format, d.owner or "", d.host, repr(d.created_at), str(RECENT_MAX)]


def _load(record: bytes, cancel_requested: bytes | None) -> TaskRecord:
    if cancel_requested == b"1":
        return TaskRecord.from_json(record, cancel_requested=True)
    return TaskRecord.from_json(record)


def event_from_fields(
    task_id: str, seq: int, fields: dict[bytes, bytes], preview: EncodedPreview | None = None
) -> RecordedEvent:
    return RecordedEvent(
        task_id, seq, fields[b"type"].decode(), float(fields[b"time"]), orjson.loads(fields[b"message"]), preview
    )


def preview_meta(preview: EncodedPreview) -> bytes:
    """What the preview hash and the feed keep beside a preview's bytes: a JSON list."""
    return orjson.dumps([preview.format, preview.width, preview.height, preview.image_width, preview.image_height])


def preview_from_fields(meta: bytes, data: bytes) -> EncodedPreview:
    """A preview from `preview_meta` and its bytes. A meta of three (format, width, height), as an
    earlier release wrote it, is of a preview as large as its image."""
    fmt, width, height, *image_size = orjson.loads(meta)
    image_width, image_height = image_size or (width, height)
    return EncodedPreview(fmt, width, height, image_width, image_height, data)


class RedisStore:
    def __init__(
        self,
        client: aioredis.Redis,
        names: RedisNames,
        *,
        retention: float,
        event_maxlen: int = 100_000,
        feed_maxlen: int = 10_000,
    ) -> None:
        self.redis = client
        self.names = names
        self.retention = retention
        self.event_maxlen = event_maxlen
        self.feed_maxlen = feed_maxlen
        self._append = client.register_script(_APPEND)
        self.outbox = RedisOutbox(client, names, retention=retention)

    async def create(self, record: TaskRecord, inputs: Mapping[str, bytes] | None = None) -> None:
        k = self.names
        async with self.redis.pipeline(transaction=True) as tx:
            tx.hset(
                k.task(record.id),
                mapping={
                    # the pictures live in the task's own hash: they expire and go with it
                    **{_INPUT + name: data for name, data in (inputs or {}).items()},
                    "record": record.to_json(),
                    "status": str(record.status),
                    "token": record.token,
                    "created_at": repr(record.created_at),
                    "last_seq": str(record.last_seq),
                    "fence_attempt": str(record.attempt),
                },
            )
            tx.set(k.token(record.token), record.id)
            tx.zadd(k.tasks, {record.id: record.created_at})
            tx.zadd(k.status(str(record.status)), {record.id: record.created_at})
            await tx.execute()

    async def input(self, task_id: str, name: str) -> bytes | None:
        return cast(bytes | None, await self.redis.hget(self.names.task(task_id), _INPUT + name))

    async def save_upload(self, upload_id: str, data: bytes, *, expires_in: float) -> None:
        await self.redis.set(self.names.upload(upload_id), data, ex=max(1, int(expires_in)))

    async def upload(self, upload_id: str) -> bytes | None:
        return cast(bytes | None, await self.redis.get(self.names.upload(upload_id)))

    async def get(self, task_id: str) -> TaskRecord | None:
        # (named fields, not the whole hash: it holds the task's input pictures too)
        fields = await self.redis.hmget(self.names.task(task_id), ["record", "cancel_requested"])
        record, cancel_requested = cast(list[bytes | None], fields)
        return _load(record, cancel_requested) if record else None

    async def get_by_token(self, token: str) -> TaskRecord | None:
        task_id = cast(bytes | None, await self.redis.get(self.names.token(token)))
        return await self.get(task_id.decode()) if task_id else None

    async def list(
        self, *, status: TaskStatus | None, limit: int, cursor: str | None, owner: str | None
    ) -> Page:
        index = self.names.status(str(status)) if status is not None else self.names.tasks
        top = "+inf" if cursor is None else f"({decode_cursor(cursor)[0]!r}"
        items: list[TaskRecord] = []
        while len(items) <= limit:
            found = await self.redis.zrevrangebyscore(index, top, "-inf", start=0, num=limit + 1, withscores=True)
            ids = cast(list[tuple[bytes, float]], found)
            if not ids:
                break
            for task_id, score in ids:
                top = f"({score!r}"
                record = await self.get(task_id.decode())
                if record is None:  # expired after its retention: forget it here too
                    await self.redis.zrem(index, task_id)
                elif owner is None or record.owner == owner:
                    items.append(record)
            if len(ids) <= limit:
                break
        next_cursor = encode_cursor(items[limit - 1].created_at, items[limit - 1].id) if len(items) > limit else None
        return Page(items=items[:limit], next_cursor=next_cursor)

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
        k = self.names
        while True:
            record = await self.get(task_id)
            if record is None:
                raise KeyError(task_id)
            before = record.status
            event = RecordedEvent(task_id, record.last_seq + 1, type_, time, message, preview)
            record.apply(event)
            delivery = plan_delivery(record, event)  # (before the record is written: it may note it)
            result = await self._append(
                keys=[
                    k.task(task_id),
                    k.events(task_id),
                    k.preview(task_id),
                    k.feed,
                    k.status(str(before)),
                    k.status(str(record.status)),
                    k.token(record.token),
                    k.files(task_id),
                    k.delivery(delivery.id if delivery else ""),
                    k.deliveries(task_id),
                    k.outbox,
                    k.outbox_pending,
                    k.outbox_recent,
                ],
                args=[
                    str(event.seq - 1),
                    str(event.seq),
                    type_,
                    repr(time),
                    orjson.dumps(message),
                    record.to_json(),
                    str(record.status),
                    fence.owner if fence else "",
                    str(fence.attempt) if fence else "",
                    preview_meta(preview) if preview else "",
                    task_id,
                    repr(record.created_at),
                    str(int(self.retention)) if event.terminal else "0",
                    str(self.event_maxlen),
                    preview.data if preview else b"",
                    str(self.feed_maxlen),
                    write_id or "",
                    *_delivery_args(delivery),
                ],
            )
            if result == b"ok":
                return event
            if result == b"done":  # recorded by the try whose answer was lost: it was the last write
                return dataclasses.replace(event, seq=event.seq - 1)
            if result == b"stale":
                raise StaleWrite(f"task {task_id} is no longer owned by {fence}")
            if result == b"missing":
                raise KeyError(task_id)
            # b"conflict": another process appended first; fold its event in and try again

    async def append_many(
        self, task_id: str, events: Sequence[NewEvent], *, fence: Fence | None = None
    ) -> builtins.list[RecordedEvent]:
        return await append_each(self, task_id, events, fence)

    async def events(self, task_id: str, since: int = 0, *, limit: int | None = None) -> builtins.list[RecordedEvent]:
        entries = await self.redis.xrange(self.names.events(task_id), min=f"(0-{since}", max="+", count=limit)
        newest = cast(dict[bytes, bytes], await self.redis.hgetall(self.names.preview(task_id)))
        newest_seq = int(newest[b"seq"]) if newest else -1
        events = []
        for entry_id, fields in cast(list[StreamEntry], entries):
            seq = int(entry_id.split(b"-")[1])
            preview = preview_from_fields(newest[b"meta"], newest[b"data"]) if seq == newest_seq else None
            events.append(event_from_fields(task_id, seq, fields, preview))
        return events

    async def set_cancel_requested(self, task_id: str) -> None:
        if not await self.redis.exists(self.names.task(task_id)):
            raise KeyError(task_id)
        await self.redis.hset(self.names.task(task_id), "cancel_requested", "1")

    async def unfinished(self) -> builtins.list[TaskRecord]:
        records = []
        for status in TaskStatus:
            if status.is_final:
                continue
            for task_id in cast(list[bytes], await self.redis.zrange(self.names.status(str(status)), 0, -1)):
                if (record := await self.get(task_id.decode())) is not None:
                    records.append(record)
        return sorted(records, key=lambda r: (r.created_at, r.id))

    async def check(self) -> None:
        """Nothing to ask ahead: an unreachable Redis fails the create itself, at once."""

    async def delete(self, task_id: str) -> None:
        record = await self.get(task_id)
        if record is None:
            return
        k = self.names
        deliveries = [d.decode() for d in cast(list[bytes], await self.redis.zrange(k.deliveries(task_id), 0, -1))]
        async with self.redis.pipeline(transaction=True) as tx:
            tx.delete(k.task(task_id), k.events(task_id), k.preview(task_id), k.token(record.token), k.deliveries(task_id))
            tx.zrem(k.tasks, task_id)
            tx.zrem(k.status(str(record.status)), task_id)
            if deliveries:
                tx.delete(*(k.delivery(d) for d in deliveries))
                for index in (k.outbox, k.outbox_pending, k.outbox_recent):
                    tx.zrem(index, *deliveries)
            await tx.execute()

    async def expired(self, before: float, limit: int) -> builtins.list[str]:
        """None: each ended task's keys expire after `--retention` by themselves (the append script sets them)."""
        return []

    async def close(self) -> None:
        await self.redis.aclose()
