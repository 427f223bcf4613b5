"""The job queue on Redis Streams: a consumer group of workers, one job at a time each.

- `put` adds the task to the arrival-ordered `queue` zset (its position) and a job entry to the
  `jobs` stream, in one script.
- `take` first reclaims, with XAUTOCLAIM, a job whose worker has not renewed it for the
  visibility timeout (it died or hangs), else reads a new one with XREADGROUP. Claiming moves the
  task's fence (owner, attempt) in one script, so a worker that wakes up after losing its job
  can no longer write to the task.
- `keepalive` renews the job (XCLAIM to itself, which resets its idle time) only while the
  caller still holds the fence; `done` acknowledges and deletes the entry.
"""

from __future__ import annotations

from typing import cast

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from latentcast.server.backends.redis_client import StreamRead
from latentcast.server.backends.redis_names import GROUP, RedisNames
from latentcast.server.tasks.ports import Fence, Job

_PUT = """
local n = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[1], n, ARGV[1])
redis.call('XADD', KEYS[2], '*', 'task', ARGV[1])
local position = redis.call('ZRANK', KEYS[1], ARGV[1]) + 1
redis.call('HSET', KEYS[4], ARGV[1], position)
return position
"""

# -> {'skip'} or {'ok', attempt, reclaimed (0/1)}
_CLAIM = """
local task, queue, positions = KEYS[1], KEYS[2], KEYS[3]
local id, worker = ARGV[1], ARGV[2]
local status = redis.call('HGET', task, 'status')
if not status or status == 'completed' or status == 'failed' or status == 'cancelled' then return {'skip'} end
local waiting = redis.call('ZREM', queue, id)
redis.call('HDEL', positions, id)
if status == 'queued' and waiting == 0 then return {'skip'} end  -- cancelled while queued
local attempt = redis.call('HINCRBY', task, 'fence_attempt', 1)
redis.call('HSET', task, 'fence_owner', worker)
local reclaimed = 0
if status ~= 'queued' then reclaimed = 1 end
return {'ok', attempt, reclaimed}
"""

_KEEPALIVE = """
local fence = redis.call('HMGET', KEYS[1], 'fence_owner', 'fence_attempt')
if fence[1] ~= ARGV[1] or fence[2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[2], ARGV[4], ARGV[1], 0, ARGV[3], 'JUSTID')
return 1
"""

_REMOVE = """
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
"""

# The positions that changed since they were last announced, updated in the same step so that of
# several front-ends running this at once, exactly one announces each change.
_MOVED = """
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local changed = {}
for i, id in ipairs(ids) do
  if redis.call('HGET', KEYS[2], id) ~= tostring(i) then
    redis.call('HSET', KEYS[2], id, i)
    table.insert(changed, id); table.insert(changed, i)
  end
end
return changed
"""


class RedisQueue:
    def __init__(self, client: aioredis.Redis, names: RedisNames, *, visibility_timeout: float, block_seconds: float = 2.0) -> None:
        self.redis = client
        self.names = names
        self.visibility_ms = int(visibility_timeout * 1000)
        self.block_ms = int(block_seconds * 1000)
        self._put = client.register_script(_PUT)
        self._claim = client.register_script(_CLAIM)
        self._keepalive = client.register_script(_KEEPALIVE)
        self._remove = client.register_script(_REMOVE)
        self._moved = client.register_script(_MOVED)

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.names.jobs, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def put(self, task_id: str, attempts: int = 0) -> int:
        k = self.names
        return int(await self._put(keys=[k.queue, k.jobs, k.queue_seq, k.positions], args=[task_id]))

    async def take(self, worker: str) -> Job:
        while True:
            entry = await self._reclaim(worker) or await self._read(worker)
            if entry is None:
                continue
            entry_id, task_id = entry
            k = self.names
            claim = await self._claim(keys=[k.task(task_id), k.queue, k.positions], args=[task_id, worker])
            if claim[0] == b"skip":
                await self._ack(entry_id)
                continue
            return Job(task_id, Fence(worker, int(claim[1])), reclaimed=claim[2] == 1, handle=entry_id)

    async def _reclaim(self, worker: str) -> tuple[bytes, str] | None:
        _, entries, _ = await self.redis.xautoclaim(
            self.names.jobs, GROUP, worker, min_idle_time=self.visibility_ms, start_id="0-0", count=1
        )
        return _entry(entries[0]) if entries else None

    async def _read(self, worker: str) -> tuple[bytes, str] | None:
        read = await self.redis.xreadgroup(GROUP, worker, {self.names.jobs: ">"}, count=1, block=self.block_ms)
        reply = cast(StreamRead, read)
        return _entry(reply[0][1][0]) if reply and reply[0][1] else None

    async def keepalive(self, job: Job) -> None:
        k = self.names
        await self._keepalive(
            keys=[k.task(job.task_id), k.jobs], args=[job.fence.owner, str(job.fence.attempt), job.handle, GROUP]
        )

    async def done(self, job: Job) -> None:
        await self._ack(job.handle)

    async def _ack(self, entry_id: bytes) -> None:
        async with self.redis.pipeline(transaction=True) as tx:
            tx.xack(self.names.jobs, GROUP, entry_id)
            tx.xdel(self.names.jobs, entry_id)
            await tx.execute()

    async def remove(self, task_id: str) -> bool:
        return bool(await self._remove(keys=[self.names.queue, self.names.positions], args=[task_id]))

    async def position(self, task_id: str) -> int | None:
        rank = cast(int | None, await self.redis.zrank(self.names.queue, task_id))
        return None if rank is None else rank + 1

    async def length(self) -> int:
        return int(await self.redis.zcard(self.names.queue))

    async def moved(self) -> list[tuple[str, int]]:
        flat = await self._moved(keys=[self.names.queue, self.names.positions])
        return [(flat[i].decode(), int(flat[i + 1])) for i in range(0, len(flat), 2)]


def _entry(entry: tuple[bytes, dict[bytes, bytes]]) -> tuple[bytes, str]:
    entry_id, fields = entry
    return entry_id, fields[b"task"].decode()
