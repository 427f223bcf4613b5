"""`WS /v1/ws`: one socket, many task subscriptions.

Client messages (JSON text), each answered by the handler its route was given for its `type`
(`endpoint`; server.app gives every socket `MESSAGE_HANDLERS` and Wiro's `task_info`):
  {"type": "subscribe", "id", "token", "since": 0, "previews": "binary" | "json" | "none"}
  {"type": "unsubscribe", "id"}
  {"type": "subscribe_all", "previews": "none"}      every task's lifecycle, for dashboards
Any message may carry "api_key" (browsers cannot set headers on a socket); otherwise the key of the
handshake's headers counts. With keys configured, a subscription by token needs no key; one
without a token, and subscribe_all, need a key, and show only its own tasks unless it is an admin
(server.api.access). A socket whose key is revoked is closed with 1008 within about a second.
Server messages: events (JSON text; a preview in `binary` mode is a binary frame, see
protocol.events.encode_binary) and control messages without `seq`: `subscribed`, `unsubscribed`,
`error`. See docs/protocol.md.

What the socket follows, what it is sent and when it closes is its `Subscriber`'s to decide
(protocol.subscriber, without I/O); this module reads the socket, checks access, and sends. Two
tasks a socket: this one reads, `_send` writes what the subscriber gives it through ASGI, one
message at a time under the send timeout (server.api.subscriber_loop writes live events past both
when it can: server.api.frame_writer).

Limits (docs/security.md): a socket follows at most `max_subscriptions` tasks at once; one that
follows nothing for `ws_idle_timeout` seconds is closed with 1000; a message over
MAX_MESSAGE_BYTES is refused with an error, one over `ws_max_message_bytes` never reaches this
module (uvicorn closes the socket with 1009), and uvicorn's pings drop a peer that stops answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from latentcast.server.api.access import check_access, identify, no_task
from latentcast.server.api.context import Context, context
from latentcast.server.api.errors import parse_json
from latentcast.server.api.frame_writer import EXTENSION
from latentcast.server.api.subscriber_loop import SubscriberLoop
from latentcast.server.errors import RequestRefused, error_response
from latentcast.server.observability import metrics
from latentcast.server.protocol.client_messages import (
    MAX_MESSAGE_BYTES,
    Refused,
    previews_field,
    read_message,
    since_field,
    text_field,
)
from latentcast.server.protocol.messages import EventMessage, ServerMessage, websocket_data, websocket_frame
from latentcast.server.protocol.subscriber import CLOSE_FAILED, Close, Subscriber
from latentcast.server.security.auth import Caller, Credentials, unauthorized
from latentcast.server.tasks.service import TaskNotFound

log = logging.getLogger("latentcast.api")


class Connection:
    """One accepted socket: its client messages answered, its subscriber's messages sent."""

    def __init__(
        self, ws: WebSocket, ctx: Context, caller: Caller | None, handlers: Mapping[str, MessageHandler]
    ) -> None:
        self.ws = ws
        self.ctx = ctx
        self.caller = caller  # the handshake's key, if it had one
        self._handlers = handlers
        settings = ctx.settings
        self.subscriber = Subscriber.socket(
            queue_size=settings.subscriber_queue,
            max_subscriptions=settings.max_subscriptions,
            idle_timeout=settings.ws_idle_timeout,
            clock=asyncio.get_running_loop().time,
        )
        # absent under a server other than `latentcast serve`'s: then every frame goes through ASGI
        frames = ws.scope.get("extensions", {}).get(EXTENSION)
        direct = _FrameWrites(frames) if frames is not None else None
        self.loop = SubscriberLoop(self.subscriber, ctx.service, ctx.keys, direct)
        self._dropped = metrics.DropCounter(metrics.WS_PREVIEWS_DROPPED)

    async def serve(self) -> None:
        metrics.WS_SUBSCRIBERS.inc()
        if self.caller is not None and self.caller.key is not None:
            self.loop.watch_key(self.caller.key.digest)
        sender = asyncio.create_task(self._send())
        try:
            while True:  # until the client leaves, or the sender's close comes back as a disconnect
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                await self._handle(message.get("text") or message.get("bytes") or "")
        except WebSocketDisconnect:
            pass
        finally:
            self.loop.close()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            metrics.WS_SUBSCRIBERS.dec()
            self._dropped.update(self.subscriber)

    def follow(self, task_id: str, since: int, previews: str) -> None:
        """Subscribe this socket to the task's events after `since` (access already checked)."""
        self.loop.follow(task_id, since, previews)

    async def require_key(self, message: dict[str, Any]) -> Caller:
        """Who sent `message`: its `api_key`, else the handshake's key (see `access.identify`)."""
        caller = self.caller
        if "api_key" in message:
            caller = await self.ctx.keys.identify(Credentials(text_field(message, "api_key")))
            if caller is not None and caller.key is not None:
                self.loop.watch_key(caller.key.digest)
        if caller is None:
            raise unauthorized("an API key is required: send api_key, or a token for one task")
        return caller

    async def _handle(self, raw: str | bytes) -> None:
        reply_id = None
        try:
            if len(raw) > MAX_MESSAGE_BYTES:
                raise Refused("message_too_large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
            try:
                value = parse_json(raw, "message")
            except RequestRefused as exc:
                raise Refused("invalid_json", exc.message) from None
            message = read_message(value)
            reply_id = message.reply_id
            handler = self._handlers.get(message.type) if message.type is not None else None
            if handler is None:
                raise Refused("unknown_type", f"type must be one of: {', '.join(self._handlers)}")
            await handler(self, message.body)
        except Refused as refused:
            self.loop.refuse(refused, reply_id)
        except RequestRefused as refused:  # from the access checks: unauthorized, forbidden, not_found
            self.loop.refuse(Refused(refused.type, refused.message), reply_id)

    async def _send(self) -> None:
        timeout = self.ctx.settings.send_timeout
        try:
            async with contextlib.aclosing(self.loop.messages()) as messages:
                async for message in messages:
                    assert message is not None  # (no keepalive asked for)
                    data = websocket_data(message)
                    async with asyncio.timeout(timeout):  # a send returns at once unless the client stopped reading
                        await (self.ws.send_bytes(data) if isinstance(data, bytes) else self.ws.send_text(data))
                    metrics.WS_SENT.inc()
                    self._dropped.update(self.subscriber)
        except TimeoutError:
            self.subscriber.send_timed_out()
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client is gone (what follows tries to close all the same)
        except Exception:
            # Whatever went wrong, the client is told and the socket ends: a socket whose sender
            # died would otherwise stay open and silent for every task it follows.
            log.exception("a socket's sender failed; closing it")
        close = self.subscriber.close or Close(CLOSE_FAILED, "server error: reconnect and resubscribe with since")
        if self.ws.application_state is not WebSocketState.DISCONNECTED:
            with contextlib.suppress(Exception):
                await self.ws.close(close.code, close.reason)


class _FrameWrites:
    """The subscriber loop's `DirectWriter` on `latentcast serve`'s protocol (server.api.frame_writer)."""

    def __init__(self, frames: Any) -> None:
        self._frames = frames

    def ready(self) -> bool:
        return bool(self._frames.can_write_now())

    def write(self, message: ServerMessage) -> None:
        self._frames.write_frame(websocket_frame(message))
        metrics.WS_SENT.inc()
        if isinstance(message, EventMessage):
            metrics.ws_written_at_once.inc()


MessageHandler = Callable[[Connection, dict[str, Any]], Awaitable[None]]
SocketEndpoint = Callable[[WebSocket], Awaitable[None]]


async def subscribe(connection: Connection, message: dict[str, Any]) -> None:
    task_id = text_field(message, "id")
    since = since_field(message)
    previews = previews_field(message, "binary")
    token = message.get("token")
    if token is not None and not isinstance(token, str):
        raise Refused("forbidden", "the token does not match this task")
    # the key is checked before the lookup, so that without one nobody learns which ids exist
    caller = await connection.require_key(message) if token is None else None
    try:
        record = await connection.ctx.service.get(task_id)
    except TaskNotFound:
        raise no_task(task_id) from None
    check_access(record, token, caller)
    connection.follow(task_id, since, previews)


async def unsubscribe(connection: Connection, message: dict[str, Any]) -> None:
    connection.loop.unfollow(text_field(message, "id"))


async def subscribe_all(connection: Connection, message: dict[str, Any]) -> None:
    previews = previews_field(message, "none")
    caller = await connection.require_key(message)
    connection.loop.follow_all(previews, caller)


# The native client messages, by type.
MESSAGE_HANDLERS: Mapping[str, MessageHandler] = {
    "subscribe": subscribe,
    "unsubscribe": unsubscribe,
    "subscribe_all": subscribe_all,
}


def endpoint(handlers: Mapping[str, MessageHandler]) -> SocketEndpoint:
    """A socket route's endpoint, answering the client messages of the types `handlers` has."""
    handlers = dict(handlers)

    async def serve_socket(ws: WebSocket) -> None:
        try:
            caller = await identify(ws)  # a bad key in the handshake is refused before the socket opens
        except RequestRefused as refused:
            await ws.send_denial_response(error_response(refused))
            return
        await ws.accept()
        await Connection(ws, context(ws), caller, handlers).serve()

    return serve_socket
