"""Webhook deliveries in the SQLite database, beside the events that cause them.

`add` runs inside the store's append transaction (server.backends.sqlite_store), so an event and
its delivery are committed together or not at all. A task's deliveries go out in seq order: only
its head (its lowest pending one) has a `next_at`; when the head ends, the next one is due at once.

One process owns the database, so a claim lives in memory: a restarted server has none and sends
at once what it was sending when it stopped (the receiver may see a `webhook-id` twice, never
lose one).
"""

from __future__ import annotations

import secrets
import sqlite3

from latentcast.server.backends.sqlite_disk import disk_errors, transaction
from latentcast.server.tasks.outbox import Backlog, Claim, Delivery, NewDelivery, Outcome

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    url TEXT NOT NULL,
    format TEXT NOT NULL,
    owner TEXT,
    host TEXT NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL,
    last_status INTEGER,
    last_error TEXT,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_at) WHERE next_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS deliveries_of_task ON deliveries (task_id, seq);
CREATE INDEX IF NOT EXISTS deliveries_by_time ON deliveries (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (created_at) WHERE state = 'pending';
"""

_COLUMNS = "id, task_id, seq, type, state, attempts, last_status, last_error, next_at, done_at, created_at"
# Due deliveries looked at per claim, before those of busy hosts are skipped.
_SCAN = 500


def add(db: sqlite3.Connection, new: NewDelivery) -> None:
    """Write a delivery, in the caller's transaction; due at once unless its task has one pending."""
    db.execute(
        "INSERT INTO deliveries (id, task_id, seq, type, url, format, owner, host, created_at, state, next_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', CASE WHEN EXISTS "
        "(SELECT 1 FROM deliveries WHERE task_id = ? AND state = 'pending') THEN NULL ELSE ? END)",
        (new.id, new.task_id, new.seq, new.type, new.url, new.format, new.owner, new.host, new.created_at,
         new.task_id, new.created_at),
    )


# A claim's columns: Claim's fields before its `lease`.
_ClaimRow = tuple[str, str, int, str, str, str, str | None, str, float, int]


class SQLiteOutbox:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._claims: dict[str, tuple[str, float]] = {}  # delivery id -> (lease, until)

    async def claim(
        self, *, now: float, limit: int, lease_until: float, per_host: int, busy: dict[str, int]
    ) -> list[Claim]:
        rows: list[_ClaimRow]
        with disk_errors():
            rows = self._db.execute(
                "SELECT id, task_id, seq, type, url, format, owner, host, created_at, attempts FROM deliveries "
                "WHERE next_at IS NOT NULL AND next_at <= ? ORDER BY next_at LIMIT ?",
                (now, _SCAN),
            ).fetchall()
        taken = dict(busy)
        claims: list[Claim] = []
        for row in rows:
            if len(claims) >= limit:
                break
            held = self._claims.get(row[0])
            host = row[7]
            if (held is not None and held[1] > now) or taken.get(host, 0) >= per_host:
                continue
            taken[host] = taken.get(host, 0) + 1
            lease = secrets.token_hex(8)
            self._claims[row[0]] = (lease, lease_until)
            claims.append(Claim(*row, lease=lease))
        return claims

    async def settle(self, claim: Claim, outcome: Outcome) -> bool:
        held = self._claims.get(claim.id)
        if held is None or held[0] != claim.lease:
            return False
        with transaction(self._db) as db:
            if outcome.state == "retry":
                db.execute(
                    "UPDATE deliveries SET attempts = attempts + 1, last_status = ?, last_error = ?, next_at = ? "
                    "WHERE id = ?",
                    (outcome.status, outcome.error, outcome.at, claim.id),
                )
            else:
                db.execute(
                    "UPDATE deliveries SET attempts = attempts + 1, last_status = ?, last_error = ?, "
                    "next_at = NULL, state = ?, done_at = ? WHERE id = ?",
                    (outcome.status, outcome.error, outcome.state, outcome.at, claim.id),
                )
                db.execute(
                    "UPDATE deliveries SET next_at = ? WHERE id = (SELECT id FROM deliveries "
                    "WHERE task_id = ? AND state = 'pending' ORDER BY seq LIMIT 1)",
                    (outcome.at, claim.task_id),
                )
        del self._claims[claim.id]
        return True

    async def of_task(self, task_id: str) -> list[Delivery]:
        with disk_errors():
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM deliveries WHERE task_id = ? ORDER BY seq", (task_id,)
            ).fetchall()
        return [Delivery(*row) for row in rows]

    async def recent(self, *, limit: int, owner: str | None) -> list[Delivery]:
        where, args = ("WHERE owner = ?", (owner,)) if owner is not None else ("", ())
        with disk_errors():
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM deliveries {where} ORDER BY created_at DESC, id DESC LIMIT ?", (*args, limit)
            ).fetchall()
        return [Delivery(*row) for row in rows]

    async def backlog(self) -> Backlog:
        with disk_errors():
            count, oldest = self._db.execute(
                "SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE state = 'pending'"
            ).fetchone()
        return Backlog(count, oldest)
