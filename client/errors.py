"""Typed exceptions. Each carries the server's own message (and, for a bad field, the field list).

    LatentcastError
    ├── APIError                      the server answered with an error
    │   ├── BadRequestError           400 (e.g. invalid JSON)
    │   ├── ValidationError           422 (or 400 for an unknown model): `.fields` names each field and rule
    │   ├── AuthError                 401 / 403
    │   │   ├── AuthenticationError   401: missing or unknown API key
    │   │   └── PermissionDeniedError 403: e.g. a token that does not match the task
    │   ├── NotFoundError             404
    │   ├── ConflictError             409 (e.g. cancelling a task that already ended)
    │   ├── RateLimitError            429: `.retry_after` seconds
    │   └── InternalServerError       5xx
    ├── APIConnectionError            the server could not be reached (after the retries)
    │   └── APITimeoutError
    └── TaskError                     the task itself did not complete
        ├── TaskFailedError           ended with a fatal `task_error`: `.code`
        └── TaskCancelledError        ended with `task_cancel`: `.reason`
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from latentcast.client.events import Event


class LatentcastError(Exception):
    """The base of every error this client raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclasses.dataclass(frozen=True, slots=True)
class FieldError:
    """One refused field of a request: its name, the rule it broke, and the server's message."""

    field: str
    rule: str
    message: str


class APIError(LatentcastError):
    """The server refused a request. `type` is the server's error type (`not_found`, ...)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        type: str | None = None,  # the server's field name
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.type = type
        self.body = body
        self.headers = headers or {}

    def __str__(self) -> str:
        prefix = f"{self.status_code} " if self.status_code is not None else ""
        kind = f"{self.type}: " if self.type else ""
        return f"{prefix}{kind}{self.message}"


class BadRequestError(APIError):
    """400: the request could not be read."""


class ValidationError(APIError):
    """A field broke a rule; `fields` lists every one, as the server reported them."""

    def __init__(self, message: str, *, fields: list[FieldError] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.fields: list[FieldError] = fields or []

    @property
    def field_names(self) -> list[str]:
        return [f.field for f in self.fields]


class AuthError(APIError):
    """401 or 403: the credentials (API key or task token) do not grant this."""


class AuthenticationError(AuthError):
    """401: an API key is needed, or the one given is not known."""


class PermissionDeniedError(AuthError):
    """403: the credentials are valid but not for this (e.g. another task's token)."""


class NotFoundError(APIError):
    """404: no such task (or file)."""


class ConflictError(APIError):
    """409: the request conflicts with the task's state (e.g. cancelling a finished task)."""


class RateLimitError(APIError):
    """429: the queue is full. `retry_after` is the server's hint, in seconds."""

    @property
    def retry_after(self) -> float | None:
        try:
            return float(self.headers.get("retry-after", ""))
        except ValueError:
            return None


class InternalServerError(APIError):
    """5xx: the server failed."""


class APIConnectionError(LatentcastError):
    """The server could not be reached, or the connection broke, even after retrying."""


class APITimeoutError(APIConnectionError):
    """The server did not answer in time."""


class TaskError(LatentcastError):
    """The task ended without outputs. `event` is the terminal event when one was seen."""

    def __init__(self, message: str, *, task_id: str, event: Event | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.event = event


class TaskFailedError(TaskError):
    """The task ended with a fatal `task_error`; `code` is the server's error code."""

    def __init__(self, message: str, *, task_id: str, code: str | None = None, event: Event | None = None) -> None:
        super().__init__(message, task_id=task_id, event=event)
        self.code = code

    def __str__(self) -> str:
        return f"task {self.task_id} failed" + (f" ({self.code})" if self.code else "") + f": {self.message}"


class TaskCancelledError(TaskError):
    """The task was cancelled; `reason` is the server's."""

    def __init__(self, reason: str, *, task_id: str, event: Event | None = None) -> None:
        super().__init__(reason, task_id=task_id, event=event)
        self.reason = reason

    def __str__(self) -> str:
        return f"task {self.task_id} was cancelled: {self.reason}"


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


def error_from_response(status_code: int, body: Any, headers: dict[str, str] | None = None) -> APIError:
    """The typed error for an HTTP error response with the server's `{"error": {...}}` body."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or f"HTTP {status_code}")
        type_ = error.get("type") if isinstance(error.get("type"), str) else None
        raw_fields = error.get("fields")
    else:
        message = body if isinstance(body, str) and body else f"HTTP {status_code}"
        type_, raw_fields = None, None
    common: dict[str, Any] = {"status_code": status_code, "type": type_, "body": body, "headers": headers}
    if type_ == "validation_error" or status_code == 422:
        fields = [
            FieldError(str(f.get("field", "")), str(f.get("rule", "")), str(f.get("message", "")))
            for f in (raw_fields if isinstance(raw_fields, list) else [])
            if isinstance(f, dict)
        ]
        return ValidationError(message, fields=fields, **common)
    cls = _BY_STATUS.get(status_code) or (InternalServerError if status_code >= 500 else APIError)
    return cls(message, **common)


# The socket's `error` codes, as the HTTP status the same refusal gets.
_SOCKET_CODES = {"not_found": 404, "forbidden": 403, "unauthorized": 401}


def error_from_socket(message: dict[str, Any]) -> APIError:
    """The typed error for a WebSocket `{"type": "error", "code", "message"}` control message."""
    code = str(message.get("code") or "error")
    text = str(message.get("message") or code)
    status = _SOCKET_CODES.get(code)
    if status is not None:
        return _BY_STATUS[status](text, status_code=status, type=code, body=message)
    if code.startswith("invalid_"):
        return ValidationError(text, type=code, body=message, fields=[FieldError(code.removeprefix("invalid_"), code, text)])
    return APIError(text, type=code, body=message)
