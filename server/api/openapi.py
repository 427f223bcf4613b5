"""`GET /openapi.json`: the OpenAPI 3.1 description of every route, built from the routes served.

Each handler has an `Operation` beside the other routes of its layer (server.api.operations for
the native API and the pages, server.compat.operations for the providers' endpoints): its request
model, parameters, the model or media type of each answer, and the credentials that open it. The
paths and methods come from the app's own routes, so the document cannot list a route that is not
served; a route whose handler has no `Operation` is left out, and tests/core/test_openapi.py fails
on it, so a new route lands only described. Schemas come from the pydantic models themselves, so a
limit changed in a model is changed in the document.

The WebSocket and the browser pages are not operations, and are left out: a socket's handshake
described as a GET would be generated as a call that cannot work, and a page is not an API. The
document's introduction describes both in prose, and docs/protocol.md is the contract of the
socket and the SSE stream (whose envelope is the `Event` schema).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute

_REF = "#/components/schemas/{model}"

# Every credential the server reads (server.security.auth); any route that takes a key takes each.
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key as `Authorization: Bearer KEY` (`latentcast keys create` makes one; "
        "a bare `Authorization: KEY` works too).",
    },
    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key", "description": "An API key as `x-api-key: KEY`."},
    "wiroNonce": {
        "type": "apiKey",
        "in": "header",
        "name": "x-nonce",
        "description": "Wiro's signed form, with `x-api-key` and `x-signature`: a nonce, accepted once.",
    },
    "wiroSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "x-signature",
        "description": "Wiro's signed form: HMAC-SHA256(key, secret + nonce), hex (docs/security.md).",
    },
    "taskToken": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "A task's token (`token` in the answer to `POST /v1/tasks`): reads that one task's "
        "detail, events and files, nothing else.",
    },
    "taskTokenHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "x-task-token",
        "description": "A task's token, as a header.",
    },
}
Requirement = Mapping[str, list[str]]
KEY: tuple[Requirement, ...] = ({"bearer": []}, {"apiKey": []}, {"apiKey": [], "wiroNonce": [], "wiroSignature": []})
KEY_OR_TOKEN: tuple[Requirement, ...] = (*KEY, {"taskToken": []}, {"taskTokenHeader": []})

Model = type[BaseModel]


@dataclasses.dataclass(frozen=True)
class Schema:
    """A model under the name the document gives it (providers name their models after their own docs)."""

    model: Model
    name: str


@dataclasses.dataclass(frozen=True)
class Reply:
    """One answer: a JSON body of `model`, or another media type (`schema` describes its bytes)."""

    description: str
    model: Model | Schema | None = None
    media_type: str = "application/json"
    schema: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)  # name -> what it says
    alternatives: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)  # media type -> schema
    # a stream's: the schema of each event's data (OpenAPI 3.1 has no word for it; 3.2's `itemSchema` is alike)
    event_data: Model | Schema | None = None


@dataclasses.dataclass(frozen=True)
class Param:
    name: str
    where: Literal["query", "header", "path"]
    description: str
    schema: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"type": "string"})


@dataclasses.dataclass(frozen=True)
class Operation:
    """What one handler takes and answers. Its description is `description`, else the handler's docstring."""

    summary: str
    tag: str
    replies: Mapping[int, Reply]
    body: Model | Schema | None = None
    body_media_types: tuple[str, ...] = ("application/json",)
    params: tuple[Param, ...] = ()
    security: tuple[Requirement, ...] = ()
    description: str = ""
    # requests that work, shown by /docs and any OpenAPI viewer: what each does -> the body
    examples: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class _PublicNames(GenerateJsonSchema):
    """Schema names without a leading underscore: a module's private model is public in the document."""

    def normalize_name(self, name: str) -> str:
        return super().normalize_name(name).lstrip("_")


class _Components:
    """The document's `components/schemas`, each model generated once under its public name."""

    def __init__(self) -> None:
        self.schemas: dict[str, dict[str, Any]] = {}

    def ref(self, model: Model | Schema, mode: JsonSchemaMode) -> dict[str, str]:
        named = model if isinstance(model, Schema) else Schema(model, model.__name__)
        schema = TypeAdapter(named.model).json_schema(mode=mode, ref_template=_REF, schema_generator=_PublicNames)
        for name, nested in {**schema.pop("$defs", {}), named.name: schema}.items():
            if self.schemas.setdefault(name, nested) != nested:
                raise ValueError(f"two different schemas are both named {name!r}: give one a Schema name")
        return {"$ref": _REF.format(model=named.name)}


def _methods(route: Route | WebSocketRoute) -> list[str]:
    """A route's methods, lower-case; HEAD goes without saying beside GET, a WebSocket's handshake is a GET."""
    if isinstance(route, WebSocketRoute) or route.methods is None:
        return ["get"]
    return sorted(method.lower() for method in route.methods if method != "HEAD")


def _parameters(route: Route | WebSocketRoute, operation: Operation) -> list[dict[str, Any]]:
    """The path's own parameters (described where the operation says more), then the others."""
    given = {p.name: p for p in operation.params}
    in_path = [given.get(name, Param(name, "path", "")) for name in route.param_convertors]
    others = [p for p in operation.params if p.name not in route.param_convertors]
    return [
        {
            "name": p.name,
            "in": p.where,
            **({"description": p.description} if p.description else {}),
            "required": p.where == "path",
            "schema": dict(p.schema),
        }
        for p in [*in_path, *others]
    ]


def _content(media_type: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    return {media_type: {"schema": dict(schema)}}


def _reply(reply: Reply, components: _Components) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": reply.description}
    content: dict[str, Any] = {}
    if reply.model is not None:
        content = _content(reply.media_type, components.ref(reply.model, "serialization"))
    elif reply.schema is not None:
        content = _content(reply.media_type, reply.schema)
    if reply.event_data is not None:
        content[reply.media_type]["x-event-data"] = components.ref(reply.event_data, "serialization")
    for media_type, schema in reply.alternatives.items():
        content.update(_content(media_type, schema))
    if content:
        answer["content"] = content
    if reply.headers:
        answer["headers"] = {
            name: {"description": text, "schema": {"type": "string"}} for name, text in reply.headers.items()
        }
    return answer


def _operation(
    route: Route | WebSocketRoute, operation: Operation, components: _Components, operation_id: str
) -> dict[str, Any]:
    described: dict[str, Any] = {
        "operationId": operation_id,
        "summary": operation.summary,
        "tags": [operation.tag],
    }
    description = operation.description or inspect.getdoc(route.endpoint)
    if description:
        described["description"] = description
    parameters = _parameters(route, operation)
    if parameters:
        described["parameters"] = parameters
    if operation.body is not None:
        schema = components.ref(operation.body, "validation")
        content: dict[str, Any] = {}
        for media_type in operation.body_media_types:
            content.update(_content(media_type, schema))
        if operation.examples:
            examples = {summary: {"summary": summary, "value": value} for summary, value in operation.examples.items()}
            content[operation.body_media_types[0]]["examples"] = examples
        described["requestBody"] = {"required": True, "content": content}
    described["responses"] = {str(status): _reply(reply, components) for status, reply in operation.replies.items()}
    if operation.security:
        described["security"] = [dict(requirement) for requirement in operation.security]
    return described


def _operation_id(route: Route | WebSocketRoute, taken: Counter[str]) -> str:
    """The handler's module and name; a handler served twice (two paths, or methods) gets `_2` on its second."""
    base = f"{route.endpoint.__module__.rsplit('.', 1)[-1]}_{route.endpoint.__name__}"
    taken[base] += 1
    return base if taken[base] == 1 else f"{base}_{taken[base]}"


INFO_DESCRIPTION = """\
Latentcast runs Stable Diffusion 3 text-to-image tasks and streams each task's life: every \
lifecycle event and each denoising step's preview, over a WebSocket (`/v1/ws`) and Server-Sent \
Events (`/v1/tasks/{task_id}/events`). The event envelope is the `Event` schema; \
docs/protocol.md (in the source distribution, and at \
https://github.com/latentcast/latentcast/blob/main/docs/protocol.md) is the contract for both streams.

The WebSocket is not an operation here (OpenAPI has no words for one): `ws://HOST/v1/ws`, also \
at `/v1` where Wiro's clients connect. The client sends JSON text: `{"type": "subscribe", "id", \
"token", "since": 0, "previews": "binary"|"json"|"none"}`, `{"type": "unsubscribe", "id"}`, \
Wiro's `{"type": "task_info", "tasktoken"}`, or `{"type": "subscribe_all"}` (a key: every task it \
may see); any may carry `"api_key"`. The server sends each event as an `Event` (JSON text; with \
`previews: binary` a preview is a binary frame: a 4-byte big-endian length, the JSON envelope, the \
image) and control messages without `seq`: `subscribed`, `unsubscribed`, `error` (`code`, \
`message`). A handshake with a bad key is refused with 401, one from a page of an origin not \
allowed (`--cors-origin`) with 403.

The browser pages are not operations either: `/` (a prompt form) and `/t/{task_id}?token=` (one \
task live, or replayed), `/dashboard`, `/embed/{task_id}?token=` (one task's live view, to frame), \
and `/docs`, which renders this document.

Errors of the native API are `{"error": {"type", "message", "fields"?: [{"field", "rule", \
"message"}]}}` (`ErrorBody`); each provider's endpoints answer in that provider's own shape.

On a server without API keys (it then listens on loopback only) no credential is needed; with \
keys, every route marked with a security requirement needs one of them. Every route may also \
answer 413 (body too large), 408 (body too slow) or 429 (`rate_limited`, `too_many_in_flight`, \
with Retry-After): docs/security.md.
"""


def document(routes: Sequence[BaseRoute], operations: Mapping[Callable[..., Any], Operation]) -> dict[str, Any]:
    """The OpenAPI document of the described routes among `routes` (mounts serve files: not listed)."""
    components = _Components()
    paths: dict[str, dict[str, Any]] = {}
    taken: Counter[str] = Counter()
    tags: dict[str, None] = {}
    for route in routes:
        if not isinstance(route, Route | WebSocketRoute) or route.endpoint not in operations:
            continue
        operation = operations[route.endpoint]
        tags[operation.tag] = None
        for method in _methods(route):
            described = _operation(route, operation, components, _operation_id(route, taken))
            paths.setdefault(route.path, {})[method] = described
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Latentcast",
            "version": importlib.metadata.version("latentcast"),
            "description": INFO_DESCRIPTION,
        },
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        "components": {"schemas": dict(sorted(components.schemas.items())), "securitySchemes": SECURITY_SCHEMES},
    }


DOCUMENT_OPERATION = Operation(
    summary="This document",
    tag="Reference",
    replies={200: Reply("The OpenAPI 3.1 description of every route; `/docs` renders it.", schema={"type": "object"})},
)


def route(operations: Mapping[Callable[..., Any], Operation]) -> Route:
    """`GET /openapi.json`, describing the app that serves it (built once: the routes are fixed by then)."""
    described = dict(operations)
    built: dict[str, Any] | None = None

    async def openapi_document(request: Request) -> JSONResponse:
        nonlocal built
        if built is None:
            built = document(request.app.routes, described)
        return JSONResponse(built)

    described[openapi_document] = DOCUMENT_OPERATION
    return Route("/openapi.json", openapi_document, methods=["GET"])
