"""Checking API keys against the store, for every request and socket message that carries one.

Keys are enforced once any key exists (`KeyStore.configured`); until then the server is open, as
it was before keys existed, and `serve` binds loopback only (server/keys_command.py).

A signed request (Wiro: `x-nonce` + `x-signature`) must carry the key's HMAC of its secret and the
nonce, and a nonce is accepted once per key within NONCE_WINDOW (kept in the store, so every
front-end refuses a replay another one saw).

Lookups are cached for CACHE_SECONDS: a key revoked with `latentcast keys revoke` stops working on
every front-end within that time, without a store round trip on every request.
"""

from __future__ import annotations

import time

from latentcast.server.security.auth import ANYONE, Caller, Credentials, unauthorized
from latentcast.server.security.keys import ApiKey, KeyStore, digest, unseal
from latentcast.server.security.wiro_signature import verify_wiro_signature

CACHE_SECONDS = 0.5
NONCE_WINDOW = 300.0
MAX_NONCE_CHARS = 128


class KeyRing:
    """The server's view of its `KeyStore`: who a key is, whether keys are enforced at all."""

    def __init__(self, store: KeyStore, cache_seconds: float = CACHE_SECONDS) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self._configured: tuple[bool, float] = (False, float("-inf"))
        # only active keys are cached: random wrong keys cannot grow it
        self._active: dict[str, tuple[ApiKey, float]] = {}

    async def enforced(self) -> bool:
        configured, read_at = self._configured
        now = time.monotonic()
        if now - read_at > self.cache_seconds:
            configured = await self.store.configured()
            self._configured = (configured, now)
        return configured

    async def active(self, key_digest: str) -> ApiKey | None:
        """The unrevoked key with this digest, as of at most CACHE_SECONDS ago."""
        now = time.monotonic()
        cached = self._active.get(key_digest)
        if cached is not None and now - cached[1] <= self.cache_seconds:
            return cached[0]
        found = await self.store.find(key_digest)
        if found is None or not found.active:
            self._active.pop(key_digest, None)
            return None
        self._active[key_digest] = (found, now)
        return found

    async def identify(self, given: Credentials | None) -> Caller | None:
        """`ANYONE` on a server without keys; None for no key; the key's caller; or a 401 for a bad key.

        A signed request uses up its nonce: call this once per request (see `server.api.access`).
        """
        if not await self.enforced():
            return ANYONE
        if given is None:
            return None
        key = await self.active(digest(given.key))
        if key is None:
            raise unauthorized("the API key is not valid (unknown or revoked)")
        if given.nonce is not None or given.signature is not None:
            await self._check_signature(key, given)
        return Caller(key)

    async def _check_signature(self, key: ApiKey, given: Credentials) -> None:
        if not given.nonce or not given.signature:
            raise unauthorized("x-nonce and x-signature go together")
        if len(given.nonce) > MAX_NONCE_CHARS:
            raise unauthorized(f"x-nonce is longer than {MAX_NONCE_CHARS} characters")
        # checked before the nonce is recorded, so nobody without the secret can burn nonces
        if not verify_wiro_signature(given.key, unseal(key, given.key), given.nonce, given.signature):
            raise unauthorized("x-signature does not sign x-nonce with this key's secret")
        if not await self.store.first_use(key.id, given.nonce, NONCE_WINDOW):
            raise unauthorized(f"this x-nonce was already used in the last {NONCE_WINDOW:g} seconds")
