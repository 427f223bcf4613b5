"""A socket's client messages, free of I/O: a JSON object naming its `type`, and its fields, each
checked, with every refusal a `Refused` that carries the code of the `error` reply it becomes
(docs/protocol.md lists them). Which types a socket answers, and what each does, is its route's
choice (server.api.websocket.endpoint)."""

from __future__ import annotations

import dataclasses
from typing import Any

from latentcast.server.protocol.events import PREVIEW_MODES

# Larger messages are refused unread; uvicorn closes a socket whose message is over
# `ws_max_message_bytes` before it reaches the application.
MAX_MESSAGE_BYTES = 64 * 1024


class Refused(Exception):
    """A client message refused: answered with an `error` control message, the socket stays open."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclasses.dataclass(frozen=True, slots=True)
class ClientMessage:
    type: str | None  # None when it names none: no handler has it
    body: dict[str, Any]
    reply_id: str | None  # its `id`, when a string: an `error` reply names it, so the client knows which failed


def read_message(value: Any) -> ClientMessage:
    """A message parsed from JSON (strictly, by the transport), as a `ClientMessage`."""
    if not isinstance(value, dict):
        raise Refused("invalid_message", "message must be a JSON object")
    kind, reply_id = value.get("type"), value.get("id")
    return ClientMessage(
        kind if isinstance(kind, str) else None, value, reply_id if isinstance(reply_id, str) else None
    )


def text_field(body: dict[str, Any], field: str) -> str:
    """The message's `field`, which must be a non-empty string."""
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise Refused("invalid_" + field, f"{field} must be a non-empty string")
    return value


def since_field(body: dict[str, Any]) -> int:
    """The last seq the client has (0, the default: none), after which it wants the events."""
    since = body.get("since", 0)
    if not isinstance(since, int) or isinstance(since, bool) or since < 0:
        raise Refused("invalid_since", "since must be a non-negative integer")
    return since


def previews_field(body: dict[str, Any], default: str) -> str:
    """How the client wants previews: binary frames, base64 in JSON, or none."""
    previews = body.get("previews", default)
    if previews not in PREVIEW_MODES:
        raise Refused("invalid_previews", "previews must be one of: binary, json, none")
    return previews
