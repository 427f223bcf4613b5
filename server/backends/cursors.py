"""Page cursors of `TaskStore.list`: where the last page ended, opaque to clients.

Every store orders tasks by (created_at, id), newest first, so one encoding serves them all and a
cursor stays valid whichever backend hands it back.
"""

from __future__ import annotations

import base64

import orjson


def encode_cursor(created_at: float, task_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at, task_id])).decode()


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Raises ValueError for a cursor this server did not hand out."""
    try:
        created_at, task_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except Exception as exc:
        raise ValueError("cursor is not one this server returned") from exc
    if not isinstance(created_at, (int, float)) or not isinstance(task_id, str):
        raise ValueError("cursor is not one this server returned")
    return float(created_at), task_id
