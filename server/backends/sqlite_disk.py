"""What the disk can do to SQLite, raised as an outage rather than as a bug.

A full disk, a read-only or failing file system, a database locked by another process or a
corrupt page all surface as `sqlite3.OperationalError` or `sqlite3.DatabaseError`. None of them
is a fault of the request or of the code, and none is for the caller to decide about: they are
raised as `StoreUnavailable`, as a Redis outage is, so the API answers 503 with Retry-After and
changes nothing, and a worker waits and writes again (server.tasks.outage).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from latentcast.server.tasks.ports import StoreUnavailable

# Errors of our own making, not of the disk's: they stay what they are, loud.
_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


@contextlib.contextmanager
def disk_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.DatabaseError as failure:
        if isinstance(failure, _BUGS):
            raise
        raise StoreUnavailable(f"SQLite: {failure}") from failure


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write, all or nothing (`db` in autocommit mode); the disk's errors as `disk_errors` says."""
    with disk_errors():
        db.execute("BEGIN")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            # On a full disk SQLite has rolled back already; a second ROLLBACK would raise.
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise
