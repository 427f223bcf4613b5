"""API errors: one JSON shape for every failure, naming the field and the rule where there is one.

    {"error": {"type": "validation_error", "message": "...", "fields": [{"field", "rule", "message"}]}}
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class APIError(Exception):
    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        fields: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
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


def field_error(field: str, rule: str, message: str) -> dict[str, str]:
    return {"field": field, "rule": rule, "message": message}


def pydantic_fields(exc: ValidationError) -> list[dict[str, str]]:
    """Each pydantic error as {field, rule, message}; the rule is pydantic's error type."""
    fields = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error["loc"]) or "body"
        rule = "unknown_field" if error["type"] == "extra_forbidden" else error["type"]
        message = "unknown field" if rule == "unknown_field" else error["msg"]
        fields.append(field_error(field, rule, f"{field}: {message}"))
    return fields


def invalid(fields: list[dict[str, str]], status: int = 422) -> APIError:
    summary = "; ".join(f["message"] for f in fields)
    return APIError(status, "validation_error", summary, fields=fields)


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/422 that says what is wrong with it."""
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise APIError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid([field_error("body", "object_type", "body: must be a JSON object")])
    return body


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
