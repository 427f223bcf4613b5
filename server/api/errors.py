"""Reading a request: its body as strict JSON, and validation errors that name the field and the rule.

Every refusal is the API's error (`server.errors.APIError`), in its one JSON shape.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request

from latentcast.server.api.forms import Form, FormError, read_form
from latentcast.server.errors import APIError


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


def parse_json(raw: bytes | str, what: str = "request body") -> Any:
    """`raw` as JSON, strictly: UTF-8, no name twice in an object, no lone surrogates; else a 400 (a
    422 naming a name given twice, rule `duplicate_key`: which of the two values was meant cannot
    be known).

    The standard library's parser, not orjson: orjson refuses NaN, Infinity and integers beyond 64
    bits outright with only a character offset, while parsed here they reach validation, which
    names the field (`seed: Input should be less than or equal to ...`). Bodies are small
    (--max-body-bytes), so its speed does not matter.
    """
    if not raw.strip():
        raise APIError(400, "invalid_json", f"{what} is empty; send a JSON object")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(text, object_pairs_hook=_unique_names)
    except UnicodeDecodeError:
        raise APIError(400, "invalid_json", f"{what} is not UTF-8") from None
    except _DuplicateName as exc:
        name = exc.name.encode("utf-8", "backslashreplace").decode()[:100]  # it is echoed back
        raise invalid([field_error(name, "duplicate_key", f"{name}: given more than once")]) from None
    except RecursionError:
        raise APIError(400, "invalid_json", f"{what} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and integers of more than 4300 digits
        raise APIError(400, "invalid_json", f"{what} is not valid JSON: {exc}") from None
    if _has_lone_surrogate(value):
        # "\ud800" is valid JSON but not text: it could be neither stored nor sent back
        raise APIError(400, "invalid_json", f"{what} holds a \\u escape of half a character (a lone surrogate)")
    return value


class _DuplicateName(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's members as a dict, refusing a name given twice (JSON says "names", not keys)."""
    value: dict[str, Any] = {}
    for name, item in pairs:
        if name in value:
            raise _DuplicateName(name)
        value[name] = item
    return value


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/422 that says what is wrong with it."""
    body = parse_json(await request.body())
    if not isinstance(body, dict):
        raise invalid([field_error("body", "object_type", "body: must be a JSON object")])
    return body


async def read_request_form(request: Request) -> Form:
    """The request's multipart/form-data body, or a 400 that says what is wrong with it."""
    try:
        return read_form(request.headers.get("content-type", ""), await request.body())
    except FormError as exc:
        raise invalid([field_error(exc.field, exc.rule, str(exc))], status=400) from None
