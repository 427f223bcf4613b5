"""Output files kept in Redis, so any front-end serves what any worker on any host produced.

A file is written by one script that first checks the writer's fence, as the event append does:
a worker paused past the visibility timeout that wakes up in the middle of storing its outputs
cannot overwrite the new owner's, nor leave files on a task that ended without them. The script
also lists the file in the task's `files` set, which a failed or cancelled end deletes.

They expire with the task's retention. Operators who would rather keep large outputs out of
Redis point every process at one shared folder with `--outputs-dir` (DiskFiles) instead.
"""

from __future__ import annotations

from typing import cast

import redis.asyncio as aioredis

from latentcast.server.backends.file_names import safe_output_name
from latentcast.server.backends.redis_names import RedisNames
from latentcast.server.tasks.ports import Fence, StaleWrite

_WRITE = """
local fence = redis.call('HMGET', KEYS[1], 'fence_owner', 'fence_attempt')
if fence[1] ~= ARGV[1] or fence[2] ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
redis.call('SADD', KEYS[3], KEYS[2])
redis.call('EXPIRE', KEYS[3], ARGV[4])
return 1
"""


class RedisFiles:
    def __init__(self, client: aioredis.Redis, names: RedisNames, public_url: str, retention: float) -> None:
        self._redis = client
        self.names = names
        self.public_url = public_url.rstrip("/")
        self.retention = retention
        self._write = client.register_script(_WRITE)

    def url(self, task_id: str, name: str) -> str:
        return f"{self.public_url}/v1/files/{task_id}/{name}"

    async def write(self, task_id: str, name: str, data: bytes, fence: Fence) -> None:
        k = self.names
        written = await self._write(
            keys=[k.task(task_id), k.file(task_id, name), k.files(task_id)],
            args=[fence.owner, str(fence.attempt), data, str(int(self.retention) + 3600)],
        )
        if not written:
            raise StaleWrite(f"task {task_id} is no longer owned by {fence}: output {name} not stored")

    async def delete(self, task_id: str) -> None:
        files = self.names.files(task_id)
        keys = await self._redis.smembers(files)
        await self._redis.delete(files, *keys)

    async def read(self, task_id: str, name: str) -> bytes | None:
        if not safe_output_name(task_id, name):
            return None
        return cast(bytes | None, await self._redis.get(self.names.file(task_id, name)))
