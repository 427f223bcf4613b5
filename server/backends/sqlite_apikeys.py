"""API keys, used nonces and webhook secrets in the server's SQLite database (the same file as the tasks).

A connection of its own: `latentcast keys` writes here while the server runs, and WAL lets the
two processes share the file. Rows are read on every lookup, so a key created or revoked by the
CLI is seen by the server at its next lookup (the server caches for under a second, see
`server.security.auth`).
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from pathlib import Path

import orjson

from latentcast.server.backends.sqlite_disk import disk_errors
from latentcast.server.security.keys import ApiKey
from latentcast.server.security.webhook_secrets import WebhookSecrets

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_nonces (
    key_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (key_id, nonce)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhook_secrets (
    owner TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
"""

def _load(record: str) -> ApiKey:
    return ApiKey(**orjson.loads(record))


def _dump(key: ApiKey) -> str:
    return orjson.dumps(dataclasses.asdict(key)).decode()


class SQLiteKeyStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        with disk_errors():
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    async def add(self, key: ApiKey) -> None:
        with disk_errors():
            self._db.execute(
                "INSERT INTO api_keys (id, digest, created_at, record) VALUES (?, ?, ?, ?)",
                (key.id, key.digest, key.created_at, _dump(key)),
            )

    async def find(self, digest: str) -> ApiKey | None:
        with disk_errors():
            row = self._db.execute("SELECT record FROM api_keys WHERE digest = ?", (digest,)).fetchone()
            return _load(row[0]) if row else None

    async def all(self) -> list[ApiKey]:
        with disk_errors():
            rows = self._db.execute("SELECT record FROM api_keys ORDER BY created_at, id").fetchall()
            return [_load(record) for (record,) in rows]

    async def revoke(self, key_id: str, at: float) -> ApiKey | None:
        with disk_errors():
            row = self._db.execute("SELECT record FROM api_keys WHERE id = ?", (key_id,)).fetchone()
            if row is None:
                return None
            key = _load(row[0])
            if key.active:
                key = dataclasses.replace(key, revoked_at=at)
                self._db.execute("UPDATE api_keys SET record = ? WHERE id = ?", (_dump(key), key_id))
            return key

    async def configured(self) -> bool:
        with disk_errors():
            return self._db.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None

    async def first_use(self, key_id: str, nonce: str, window: float) -> bool:
        with disk_errors():
            now = time.time()
            self._db.execute("DELETE FROM api_nonces WHERE expires_at < ?", (now,))
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO api_nonces (key_id, nonce, expires_at) VALUES (?, ?, ?)",
                (key_id, nonce, now + window),
            )
            return cursor.rowcount == 1

    async def webhook_secrets(self, owner: str) -> WebhookSecrets | None:
        with disk_errors():
            row = self._db.execute("SELECT record FROM webhook_secrets WHERE owner = ?", (owner,)).fetchone()
        return WebhookSecrets(**orjson.loads(row[0])) if row else None

    async def put_webhook_secrets(self, owner: str, secrets: WebhookSecrets, *, replace: bool) -> WebhookSecrets:
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        with disk_errors():
            self._db.execute(
                f"{verb} INTO webhook_secrets (owner, record) VALUES (?, ?)",
                (owner, orjson.dumps(dataclasses.asdict(secrets)).decode()),
            )
        kept = await self.webhook_secrets(owner)
        assert kept is not None
        return kept

    async def close(self) -> None:
        self._db.close()
