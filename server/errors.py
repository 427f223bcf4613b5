"""The API's error: one exception every layer may raise, and the JSON body it renders as.

    {"error": {"type": "validation_error", "message": "...", "fields": [{"field", "rule", "message"}]}}

It sits below everything that answers a client (the security middleware, the endpoints, the
providers' endpoints), so each of them refuses in the same shape without importing the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class RequestRefused(Exception):
    """A request the API refuses: its status, error type and message, and the fields at fault."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        fields: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.fields = fields
        self.headers = headers

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.fields:
            error["fields"] = self.fields
        return {"error": error}


def error_response(exc: RequestRefused) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def handle_api_error(request: Request, exc: Exception) -> Response:
    """The app's exception handler for `RequestRefused`."""
    assert isinstance(exc, RequestRefused)
    return error_response(exc)



# How long a client should wait before retrying while the backend is unreachable: a Redis
# restart with its append-only file takes a second or two.
RETRY_AFTER_SECONDS = 2


def store_unavailable(cause: object = None, *, busy: bool = False) -> RequestRefused:
    """The answer to any request the task store could not serve: Redis unreachable, or answering
    but with every connection this front-end may open to it in use (`busy`), or the disk under
    SQLite full, read-only or failing. `cause` says which."""
    if busy:
        state = "busy (every connection to it stayed in use)"
    else:
        state = f"unreachable ({cause})" if cause else "unreachable (restarting?)"
    return RequestRefused(
        503,
        "unavailable",
        f"the task store is {state}: nothing was done; retry after Retry-After seconds",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
