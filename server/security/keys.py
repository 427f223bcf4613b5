"""API keys: made by `latentcast keys create`, shown once, stored so a leaked database opens nothing.

A key is 256 random bits; the store keeps only its SHA-256. Slow password hashes (bcrypt, scrypt)
exist to protect guessable secrets; a 256-bit random key cannot be guessed, so one fast hash is
as strong and lets every request be checked in microseconds.

Each key also has a secret, for Wiro's request signature (`x-signature` = HMAC-SHA256 of
`secret + nonce` keyed by the key). To check a signature the server needs the secret itself, so
it cannot be hashed: it is stored XORed with a keystream derived from the key (HMAC-SHA256 of a
fixed label, keyed by the key). The database alone reveals neither; the key a request carries
unlocks its own secret. A key seals exactly one secret, so its keystream is never reused.

`KeyStore` is the interface of where keys are kept; the backends implement it (server.backends).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import time
from typing import Protocol

from latentcast.server.security.webhook_secrets import SecretStore

KEY_PREFIX = "lc_"
SECRET_PREFIX = "lcs_"
_SEAL_LABEL = b"latentcast wiro secret v1"


@dataclasses.dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key: never the key itself (`digest` is its SHA-256) nor its secret in clear."""

    id: str  # public: what tasks record as their owner and what `keys revoke` takes
    name: str
    digest: str
    sealed_secret: str  # hex
    admin: bool = False
    rate_per_minute: int | None = None
    max_in_flight: int | None = None
    created_at: float = 0.0
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class KeyStore(SecretStore, Protocol):
    """API keys, found by their SHA-256, the Wiro nonces each key has used, and (as a `SecretStore`)
    each key's webhook secrets.

    Kept where the tasks are (SQLite, or Redis), so `latentcast keys` and every front-end share them.
    """

    async def add(self, key: ApiKey) -> None: ...

    async def find(self, digest: str) -> ApiKey | None:
        """The key with this digest, revoked or not."""
        ...

    async def all(self) -> list[ApiKey]:
        """Every key ever created (revoked ones too), oldest first."""
        ...

    async def revoke(self, key_id: str, at: float) -> ApiKey | None:
        """Mark the key revoked (once); None when there is no such key."""
        ...

    async def configured(self) -> bool:
        """True once any key was created. Revoked keys count: revoking must never open a server."""
        ...

    async def first_use(self, key_id: str, nonce: str, window: float) -> bool:
        """Record the nonce for `window` seconds; False when the key already used it within that time."""
        ...

    async def close(self) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class NewKey:
    """What `keys create` prints once: the stored record, and the key and secret in clear."""

    record: ApiKey
    key: str
    secret: str


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _keystream(key: str) -> bytes:
    return hmac.new(key.encode(), _SEAL_LABEL, hashlib.sha256).digest()


def _xor(data: bytes, stream: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, stream, strict=True))


def unseal(record: ApiKey, key: str) -> str:
    """The key's Wiro secret; only the key itself opens it."""
    return _xor(bytes.fromhex(record.sealed_secret), _keystream(key)).decode()


def new_key(
    name: str, *, admin: bool = False, rate_per_minute: int | None = None, max_in_flight: int | None = None
) -> NewKey:
    key = KEY_PREFIX + secrets.token_urlsafe(32)  # 256 bits
    secret = SECRET_PREFIX + secrets.token_urlsafe(21)  # 168 bits; 32 characters, one keystream long
    record = ApiKey(
        id="key_" + secrets.token_hex(6),
        name=name,
        digest=digest(key),
        sealed_secret=_xor(secret.encode(), _keystream(key)).hex(),
        admin=admin,
        rate_per_minute=rate_per_minute,
        max_in_flight=max_in_flight,
        created_at=time.time(),
    )
    return NewKey(record, key, secret)
