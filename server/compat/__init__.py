"""Drop-in compatibility with the hosted SD3 APIs (docs/compatibility.md): each provider's requests
and responses, mapped onto native tasks, so every compat task streams events and is listed."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.routing import BaseRoute

from latentcast.server.api.websocket import MessageHandler, SocketEndpoint
from latentcast.server.compat import aimlapi, segmind, segmind_queue, texttoimage, wiro

# The client messages the providers add to the native socket, by type: Wiro's `task_info`.
MESSAGE_HANDLERS: Mapping[str, MessageHandler] = {**wiro.MESSAGE_HANDLERS}


def routes(socket: SocketEndpoint) -> list[BaseRoute]:
    """Every provider's routes; `socket` is the native socket's endpoint, which Wiro's clients find at `/v1`."""
    return [*aimlapi.routes, *wiro.routes(socket), *segmind.routes, *segmind_queue.routes, *texttoimage.routes]
