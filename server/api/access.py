"""Who may read a task: whoever holds its token (compared in constant time)."""

from __future__ import annotations

import hmac

from starlette.requests import HTTPConnection

from server.api.errors import APIError
from server.tasks.record import TaskRecord


def given_token(connection: HTTPConnection) -> str | None:
    return connection.query_params.get("token") or connection.headers.get("x-task-token")


def check_token(record: TaskRecord, token: str | None) -> None:
    """A token, when given, must be this task's; without API keys configured none is required."""
    if token is not None and not hmac.compare_digest(token.encode(), record.token.encode()):
        raise APIError(403, "forbidden", "the token does not match this task")
