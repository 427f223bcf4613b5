"""Who is calling: the credentials a request carries, and the caller they make it.

A key is accepted as `Authorization: Bearer KEY` (the native API, AI/ML API; a bare
`Authorization: KEY`, as textToImage's example sends, works too) or `x-api-key: KEY` (Segmind,
Wiro), with Wiro's `x-nonce` and `x-signature` when signed. `server.security.keyring` checks them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from latentcast.server.errors import RequestRefused
from latentcast.server.security.keys import ApiKey
from latentcast.server.tasks.record import TaskRecord


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    key: str
    nonce: str | None = None
    signature: str | None = None


def credentials(headers: Mapping[str, str]) -> Credentials | None:
    """The key (and Wiro's nonce and signature) a request's headers carry, if any."""
    key = headers.get("x-api-key", "").strip()
    if not key:
        authorization = headers.get("authorization", "").strip()
        scheme, _, rest = authorization.partition(" ")
        key = rest.strip() if scheme.lower() == "bearer" else authorization
    if not key:
        return None
    return Credentials(key, headers.get("x-nonce"), headers.get("x-signature"))


@dataclasses.dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the holder of a key, or (`key` None) anyone, on a server without keys."""

    key: ApiKey | None

    @property
    def owner(self) -> str | None:
        """What a task this caller creates records as its owner: the key's id, never the key."""
        return self.key.id if self.key is not None else None

    @property
    def sees_all(self) -> bool:
        """An admin key, and anyone on a server without keys, sees every task."""
        return self.key is None or self.key.admin

    def sees(self, record: TaskRecord) -> bool:
        """A key that is not an admin sees the tasks it created."""
        return self.sees_all or record.owner == self.owner


ANYONE = Caller(None)


def unauthorized(message: str) -> RequestRefused:
    return RequestRefused(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="latentcast"'})
