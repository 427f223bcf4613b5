"""API keys, used nonces and webhook secrets in Redis, shared by every front-end and by `latentcast keys`.

Layout in `redis_names`: one string per key (its record as JSON) under the key's digest, a hash of
id -> digest for listing and revoking by id, and one expiring string per used nonce, set with
`SET NX EX` so two front-ends racing on the same nonce cannot both accept it; one string per owner
of webhook secrets, first set with `SET NX`, so front-ends that make the server's at once agree.
"""

from __future__ import annotations

import dataclasses

import orjson
import redis.asyncio as aioredis

from latentcast.server.backends.redis_names import RedisNames
from latentcast.server.security.keys import ApiKey
from latentcast.server.security.webhook_secrets import WebhookSecrets


def _dump(key: ApiKey) -> bytes:
    return orjson.dumps(dataclasses.asdict(key))


class RedisKeyStore:
    def __init__(self, client: aioredis.Redis, names: RedisNames) -> None:
        self.redis = client
        self.names = names

    async def add(self, key: ApiKey) -> None:
        async with self.redis.pipeline(transaction=True) as tx:
            tx.set(self.names.apikey(key.digest), _dump(key))
            tx.hset(self.names.apikeys, key.id, key.digest)
            await tx.execute()

    async def find(self, digest: str) -> ApiKey | None:
        raw = await self.redis.get(self.names.apikey(digest))
        return ApiKey(**orjson.loads(raw)) if raw else None

    async def all(self) -> list[ApiKey]:
        digests = await self.redis.hvals(self.names.apikeys)
        found = [await self.find(_text(d)) for d in digests]
        return sorted((k for k in found if k is not None), key=lambda k: (k.created_at, k.id))

    async def revoke(self, key_id: str, at: float) -> ApiKey | None:
        digest = await self.redis.hget(self.names.apikeys, key_id)
        key = await self.find(_text(digest)) if digest else None
        if key is None or not key.active:
            return key
        key = dataclasses.replace(key, revoked_at=at)
        await self.redis.set(self.names.apikey(key.digest), _dump(key))
        return key

    async def configured(self) -> bool:
        return bool(await self.redis.exists(self.names.apikeys))

    async def first_use(self, key_id: str, nonce: str, window: float) -> bool:
        return bool(await self.redis.set(self.names.nonce(key_id, nonce), b"1", nx=True, ex=max(1, int(window))))

    async def webhook_secrets(self, owner: str) -> WebhookSecrets | None:
        raw = await self.redis.get(self.names.webhook_secret(owner))
        return WebhookSecrets(**orjson.loads(raw)) if raw else None

    async def put_webhook_secrets(self, owner: str, secrets: WebhookSecrets, *, replace: bool) -> WebhookSecrets:
        name = self.names.webhook_secret(owner)
        await self.redis.set(name, orjson.dumps(dataclasses.asdict(secrets)), nx=not replace)
        kept = await self.webhook_secrets(owner)
        assert kept is not None
        return kept

    async def close(self) -> None:
        await self.redis.aclose()


def _text(value: bytes | str) -> str:
    """A stored value as text: the pool answers bytes, though redis-py's types also allow str."""
    return value.decode() if isinstance(value, bytes) else value
