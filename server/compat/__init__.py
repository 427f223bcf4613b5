"""Drop-in compatibility with the hosted SD3 APIs (docs/compatibility.md): each provider's requests
and responses, mapped onto native tasks, so every compat task streams events and is listed."""

from __future__ import annotations

from starlette.routing import BaseRoute

from latentcast.server.compat import aimlapi, segmind, segmind_queue, texttoimage, wiro

routes: list[BaseRoute] = [
    *aimlapi.routes, *wiro.routes, *segmind.routes, *segmind_queue.routes, *texttoimage.routes
]
