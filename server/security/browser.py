"""What a web page on another site may do with this server, and the headers every response carries.

Browsers attach an `Origin` to cross-site requests and socket handshakes, and let a page read an
answer only when CORS allows its origin. Pages of this server, and of the sites given with
`--cors-origin` ("*": any), are allowed; any other site's page:

- gets no CORS grant (its preflights fail, it cannot read answers);
- cannot open a WebSocket: the handshake is refused with 403 before it is accepted (sockets have
  no CORS, so this check is what stops a page from following tasks through a visitor's browser);
- cannot make "simple" state-changing requests either: a cross-site form or `text/plain` POST
  needs no preflight, so without this check any page a visitor opens could queue work on a server
  without keys on their machine. Such requests (POST and other unsafe methods) are refused with 403.

Requests without `Origin` (curl, SDKs, servers) are not browsers' and pass. Files under `/static/`
stay readable from any origin: third-party pages load `embed.js` from there (server.api.pages).
`X-Content-Type-Options: nosniff` goes on every response, so nothing is ever sniffed into a script.
"""

from __future__ import annotations

import urllib.parse

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from latentcast.server.config import Settings
from latentcast.server.errors import RequestRefused, error_response

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# what the API's clients send and read, beyond CORS's always-allowed ones
REQUEST_HEADERS = [
    "authorization", "content-type", "x-api-key", "x-nonce", "x-signature", "x-task-token", "last-event-id"
]
RESPONSE_HEADERS = ["Location", "Retry-After", "X-Task-Id", "X-Seed"]


def _origin_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class OriginPolicy:
    """Which browser origins are trusted: this server's own, and `--cors-origin`'s."""

    def __init__(self, settings: Settings) -> None:
        self.listed = frozenset(o.lower() for o in settings.cors_origins if o != "*")
        self.any = "*" in settings.cors_origins
        self.public = _origin_of(settings.public_url) if settings.public_url else None

    def allows(self, origin: str, host: str | None) -> bool:
        """`origin` as a browser sends it; `host`, the request's Host header (this server's name
        as the page reached it, proxies included: a page served from here has that origin)."""
        origin = origin.lower()
        if self.any or origin in self.listed or origin == self.public:
            return True
        return host is not None and urllib.parse.urlsplit(origin).netloc == host.lower()

    def frame_ancestors(self) -> str:
        """CSP `frame-ancestors` for pages other sites may frame."""
        return "*" if self.any else " ".join(["'self'", *sorted(self.listed)])

    def cors_origins(self) -> list[str]:
        return ["*"] if self.any else sorted(self.listed)


class BrowserGuard:
    """Refuses untrusted origins' sockets and unsafe requests; adds `nosniff` to every response."""

    def __init__(self, app: ASGIApp, policy: OriginPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        unsafe = scope["type"] == "websocket" or scope["method"] not in SAFE_METHODS
        refused = None
        if origin is not None and unsafe and not self.policy.allows(origin, headers.get("host")):
            message = f"pages of {origin} may not use this server (see --cors-origin)"
            refused = error_response(RequestRefused(403, "origin_not_allowed", message))
        if scope["type"] == "websocket":
            if refused is not None:  # an HTTP 403: the socket is never accepted
                await WebSocket(scope, receive, send).send_denial_response(refused)
            else:
                await self.app(scope, receive, send)
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                if "x-content-type-options" not in Headers(raw=message["headers"]):
                    message["headers"] = [*message["headers"], (b"x-content-type-options", b"nosniff")]
            await send(message)

        answer = refused if refused is not None else self.app
        await answer(scope, receive, send_nosniff)


def protect(app: Starlette, settings: Settings) -> None:
    """Install the origin checks and CORS on `app` (pages add `frame-ancestors` from the same policy)."""
    policy = OriginPolicy(settings)
    app.add_middleware(BrowserGuard, policy=policy)
    # outermost: a preflight is answered here, before the guard sees an OPTIONS it would pass anyway
    app.add_middleware(
        CORSMiddleware,
        allow_origins=policy.cors_origins(),
        allow_methods=["GET", "POST"],
        allow_headers=REQUEST_HEADERS,
        expose_headers=RESPONSE_HEADERS,
    )
