"""Output files kept in Redis, so any front-end serves what any worker on any host produced.

They expire with the task's retention. Operators who would rather keep large outputs out of
Redis point every process at one shared folder with `--outputs-dir` (DiskFiles) instead.
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from latentcast.server.backends.file_names import safe_output_name
from latentcast.server.backends.redis_names import RedisNames


class RedisFiles:
    def __init__(self, url: str, client: aioredis.Redis, names: RedisNames, public_url: str, retention: float) -> None:
        self._sync = redis.Redis.from_url(url)  # `write` runs on a worker's device thread
        self._async = client
        self.names = names
        self.public_url = public_url.rstrip("/")
        self.retention = retention

    def write(self, task_id: str, name: str, data: bytes) -> tuple[int, str]:
        self._sync.set(self.names.file(task_id, name), data, ex=int(self.retention) + 3600)
        return len(data), f"{self.public_url}/v1/files/{task_id}/{name}"

    async def read(self, task_id: str, name: str) -> bytes | None:
        if not safe_output_name(task_id, name):
            return None
        return await self._async.get(self.names.file(task_id, name))
