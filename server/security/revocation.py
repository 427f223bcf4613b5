"""Closing long-lived streams whose API key is revoked.

A WebSocket or an SSE stream is authenticated once, when it opens, but may live for days. Each
keeps a `RevocationWatch` of the keys it was authenticated by; the watch asks the key ring again
as often as the ring's cache refreshes (so a revocation made anywhere, on another front-end or by
`latentcast keys revoke`, is seen within about a second) and calls `revoked` once one is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from latentcast.server.security.keyring import KeyRing
from latentcast.server.tasks.ports import StoreUnavailable


class RevocationWatch:
    def __init__(self, keys: KeyRing, revoked: Callable[[], None]) -> None:
        self._keys = keys
        self._revoked = revoked
        self._digests: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def add(self, key_digest: str) -> None:
        """Watch one more key (the first one starts the watch)."""
        self._digests.add(key_digest)
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._keys.cache_seconds)
            try:
                for key_digest in list(self._digests):
                    if await self._keys.active(key_digest) is None:
                        self._revoked()
                        return
            except StoreUnavailable:
                # Asked again next round. Not logged: a thousand streams would say it a thousand
                # times, and the server's own loops already say once that the store is out.
                continue
