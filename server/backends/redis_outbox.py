"""Webhook deliveries in Redis, shared by every front-end (layout in redis_names).

A delivery is written by the store's append script with the event that causes it
(server.backends.redis_store). Every front-end runs a sender; each claims due deliveries with one
script (`_CLAIM`) that moves them to the end of a lease in `outbox`, so one front-end sends a
delivery at a time, and a front-end that dies mid-delivery only holds it until its lease ends:
then it is due again and another front-end takes it. A result is recorded (`_SETTLE`) only under
the claim that still holds the delivery, and the delivery that ends promotes its task's next one.
"""

from __future__ import annotations

import secrets
from typing import cast

import redis.asyncio as aioredis

from latentcast.server.backends.redis_names import RedisNames
from latentcast.server.tasks.outbox import Backlog, Claim, Delivery, Outcome

# The newest deliveries kept listed in `outbox:recent`, for `recent`.
RECENT_MAX = 10_000
# Due deliveries one claim looks at, before those of busy hosts are skipped.
_SCAN = 500

# Called from the store's append script (`_APPEND`, after its event is written): KEYS are the
# task, the delivery, the task's deliveries, the outbox, pending and recent; ARGV the delivery's
# id, task id, seq, type, url, format, owner, host, created_at and RECENT_MAX.
APPEND_DELIVERY = """
local function add_delivery(task, delivery, index, outbox, pending, recent, a)
  local id, created = a[1], a[9]
  redis.call('HSET', delivery, 'task', a[2], 'seq', a[3], 'type', a[4], 'url', a[5], 'format', a[6],
    'owner', a[7], 'host', a[8], 'created_at', created, 'state', 'pending', 'attempts', 0)
  redis.call('ZADD', index, a[3], id)
  redis.call('ZADD', pending, created, id)
  redis.call('ZADD', recent, created, id)
  redis.call('ZREMRANGEBYRANK', recent, 0, -(tonumber(a[10]) + 1))
  local head = redis.call('HGET', task, 'delivery_head')
  if not head or head == '' then
    redis.call('HSET', task, 'delivery_head', id)
    redis.call('HSET', delivery, 'next_at', created)
    redis.call('ZADD', outbox, created, id)
  end
end
"""

_CLAIM = """
local outbox, prefix = KEYS[1], ARGV[1]
local now, limit, lease_until, lease, per_host = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], tonumber(ARGV[6])
local taken = {}
for i = 8, #ARGV, 2 do taken[ARGV[i]] = tonumber(ARGV[i + 1]) end
local claimed = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', outbox, '-inf', now, 'LIMIT', 0, ARGV[7])) do
  if #claimed >= limit then break end
  local key = prefix .. id
  local f = redis.call('HMGET', key, 'task', 'seq', 'type', 'url', 'format', 'owner', 'host', 'attempts', 'created_at')
  if not f[1] then
    redis.call('ZREM', outbox, id)
  elseif (taken[f[7]] or 0) < per_host then
    taken[f[7]] = (taken[f[7]] or 0) + 1
    redis.call('ZADD', outbox, lease_until, id)
    redis.call('HSET', key, 'lease', lease)
    table.insert(claimed, {id, f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9]})
  end
end
return claimed
"""

_SETTLE = """
local delivery, outbox, pending, index, task = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, lease, state, at = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local status, err, retention, prefix = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
if redis.call('HGET', delivery, 'lease') ~= lease then return 0 end
redis.call('HINCRBY', delivery, 'attempts', 1)
redis.call('HDEL', delivery, 'lease', 'last_status', 'last_error')
if status ~= '' then redis.call('HSET', delivery, 'last_status', status) end
if err ~= '' then redis.call('HSET', delivery, 'last_error', err) end
if state == 'retry' then
  redis.call('HSET', delivery, 'next_at', at)
  redis.call('ZADD', outbox, at, id)
  return 1
end
redis.call('HSET', delivery, 'state', state, 'done_at', at)
redis.call('HDEL', delivery, 'next_at')
redis.call('ZREM', outbox, id)
redis.call('ZREM', pending, id)
local seq = redis.call('HGET', delivery, 'seq')
local next_one = redis.call('ZRANGEBYSCORE', index, '(' .. seq, '+inf', 'LIMIT', 0, 1)[1]
if redis.call('EXISTS', task) == 1 then redis.call('HSET', task, 'delivery_head', next_one or '') end
if next_one then
  redis.call('HSET', prefix .. next_one, 'next_at', at)
  redis.call('ZADD', outbox, at, next_one)
end
local keep = tonumber(retention)
if keep > 0 then
  redis.call('EXPIRE', delivery, keep)
  redis.call('EXPIRE', index, keep)
end
return 1
"""

def _optional_float(value: bytes | None) -> float | None:
    return float(value) if value else None


def _delivery(delivery_id: str, fields: dict[bytes, bytes]) -> Delivery:
    status = fields.get(b"last_status")
    error = fields.get(b"last_error")
    return Delivery(
        id=delivery_id,
        task_id=fields[b"task"].decode(),
        seq=int(fields[b"seq"]),
        type=fields[b"type"].decode(),
        state=fields[b"state"].decode(),  # type: ignore[arg-type]
        attempts=int(fields[b"attempts"]),
        last_status=int(status) if status else None,
        last_error=error.decode() if error else None,
        next_attempt_at=_optional_float(fields.get(b"next_at")),
        done_at=_optional_float(fields.get(b"done_at")),
        created_at=float(fields[b"created_at"]),
    )


class RedisOutbox:
    def __init__(self, client: aioredis.Redis, names: RedisNames, *, retention: float) -> None:
        self.redis = client
        self.names = names
        self.retention = retention
        self._claim = client.register_script(_CLAIM)
        self._settle = client.register_script(_SETTLE)

    async def claim(
        self, *, now: float, limit: int, lease_until: float, per_host: int, busy: dict[str, int]
    ) -> list[Claim]:
        lease = secrets.token_hex(8)
        hosts = [part for host, count in busy.items() for part in (host, str(count))]
        args = [
            self.names.delivery(""), repr(now), str(limit), repr(lease_until), lease, str(per_host), str(_SCAN), *hosts
        ]
        rows = await self._claim(keys=[self.names.outbox], args=args)
        claims = []
        for row in rows:
            fields = (value.decode() for value in row)
            delivery_id, task_id, seq, type_, url, format_, owner, host, attempts, created_at = fields
            claims.append(
                Claim(
                    delivery_id, task_id, int(seq), type_, url, format_, owner or None, host, float(created_at),
                    int(attempts), lease,
                )
            )
        return claims

    async def settle(self, claim: Claim, outcome: Outcome) -> bool:
        k = self.names
        settled = await self._settle(
            keys=[k.delivery(claim.id), k.outbox, k.outbox_pending, k.deliveries(claim.task_id), k.task(claim.task_id)],
            args=[
                claim.id, claim.lease, outcome.state, repr(outcome.at),
                "" if outcome.status is None else str(outcome.status), outcome.error or "",
                str(int(self.retention)), k.delivery(""),
            ],
        )
        return settled == 1

    async def of_task(self, task_id: str) -> list[Delivery]:
        ids = cast(list[bytes], await self.redis.zrange(self.names.deliveries(task_id), 0, -1))
        return await self._read([i.decode() for i in ids])

    async def recent(self, *, limit: int, owner: str | None) -> list[Delivery]:
        found: list[Delivery] = []
        start = 0
        while len(found) < limit:
            ids = cast(list[bytes], await self.redis.zrevrange(self.names.outbox_recent, start, start + 2 * limit - 1))
            if not ids:
                break
            start += len(ids)
            read = await self._read([i.decode() for i in ids], owner=owner)
            found += read
        return found[:limit]

    async def _read(self, ids: list[str], *, owner: str | None = None) -> list[Delivery]:
        """The deliveries still kept, in the order of `ids` (of `owner` only, unless None); those
        expired after their retention are forgotten from the listings too."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hgetall(self.names.delivery(delivery_id))
            found = await pipe.execute()
        deliveries, gone = [], []
        for delivery_id, fields in zip(ids, found, strict=True):
            if not fields:
                gone.append(delivery_id)
            elif owner is None or fields.get(b"owner", b"").decode() == owner:
                deliveries.append(_delivery(delivery_id, fields))
        if gone:
            await self.redis.zrem(self.names.outbox_recent, *gone)
        return deliveries

    async def backlog(self) -> Backlog:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self.names.outbox_pending)
            pipe.zrange(self.names.outbox_pending, 0, 0, withscores=True)
            count, oldest = await pipe.execute()
        return Backlog(int(count), oldest[0][1] if oldest else None)
