"""The browser pages: live preview (`/`, `/t/{id}`), dashboard, the iframe embed, the API reference
(`/docs`), and `static/`.

Every page is a static HTML file; its JavaScript (ES modules under `static/`, no build step) reads
the task id and token from the address bar and talks to the public API and socket like any other
client. Nothing from the request is ever written into a page, so there is nothing to escape.

Headers: a strict Content-Security-Policy (scripts and styles only from this server, no inline
code), `Referrer-Policy: no-referrer` because page addresses carry task tokens, and framing refused
except for `/embed/{id}`, which exists to be framed: by this server's pages and the sites allowed
with `--cors-origin` (server.security.browser). Static files may be loaded from any origin
(`<script type="module" src=".../static/embed.js">` on a third-party page needs CORS).
"""

from __future__ import annotations

import contextlib
import importlib.resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from latentcast.server.api.context import context
from latentcast.server.security.browser import OriginPolicy

# The pages are package data (`latentcast.static`), read from wherever the package is installed.
# `as_file` is a no-op for a package on disk and extracts a zipped one; the stack is never closed,
# so an extracted copy lives as long as the process that serves it.
STATIC: Path = contextlib.ExitStack().enter_context(
    importlib.resources.as_file(importlib.resources.files("latentcast.static"))
)

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-src 'self'; frame-ancestors {ancestors}"
)


def _page(request: Request, name: str, *, frameable: bool = False) -> Response:
    ancestors = OriginPolicy(context(request).settings).frame_ancestors() if frameable else "'self'"
    headers = {
        "Content-Security-Policy": _CSP.format(ancestors=ancestors),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }
    if not frameable:
        headers["X-Frame-Options"] = "SAMEORIGIN"
    return FileResponse(STATIC / name, media_type="text/html; charset=utf-8", headers=headers)


async def live_page(request: Request) -> Response:
    """`/` (new task) and `/t/{id}?token=` (follow or replay one task) are the same page."""
    return _page(request, "index.html")


async def dashboard(request: Request) -> Response:
    return _page(request, "dashboard.html")


async def embed(request: Request) -> Response:
    return _page(request, "embed.html", frameable=True)


async def embed_example(request: Request) -> Response:
    return _page(request, "examples/embed.html")


async def api_docs(request: Request) -> Response:
    """`/docs`: the API reference, which the page's script renders from `/openapi.json`."""
    return _page(request, "docs.html")


class _PublicStatic:
    """StaticFiles whose responses any origin may load (module scripts cross-origin need CORS)."""

    def __init__(self, directory: Path) -> None:
        self.files = StaticFiles(directory=directory)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"access-control-allow-origin", b"*"),
                    (b"cross-origin-resource-policy", b"cross-origin"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"cache-control", b"no-cache"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.files(scope, receive, send_with_headers)


routes: list[BaseRoute] = [
    Route("/", live_page, methods=["GET", "HEAD"]),
    Route("/t/{task_id}", live_page, methods=["GET", "HEAD"]),
    Route("/dashboard", dashboard, methods=["GET", "HEAD"]),
    Route("/embed/{task_id}", embed, methods=["GET", "HEAD"]),
    Route("/examples/embed.html", embed_example, methods=["GET", "HEAD"]),
    Route("/docs", api_docs, methods=["GET", "HEAD"]),
    Mount("/static", app=_PublicStatic(STATIC), name="static"),
]
