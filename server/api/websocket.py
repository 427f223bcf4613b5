"""`WS /v1/ws`: one socket, many task subscriptions.

Client messages (JSON text), each handled by the handler registered for its `type` (`handles`):
  {"type": "subscribe", "id", "token", "since": 0, "previews": "binary" | "json" | "none"}
  {"type": "unsubscribe", "id"}
  {"type": "subscribe_all", "previews": "none"}      every task's lifecycle, for dashboards
and those the providers' modules register: Wiro's `task_info` (server.compat.wiro, which also
mounts this socket at `/v1`, where Wiro clients connect).
Any message may carry "api_key" (browsers cannot set headers on a socket); otherwise the key of the
handshake's headers counts. With keys configured, a subscription by token needs no key; one
without a token, and subscribe_all, need a key, and show only its own tasks unless it is an admin
(server.api.access). A socket whose key is revoked is closed with 1008 within about a second.
Server messages: events (JSON text; a preview in `binary` mode is a binary frame, see
protocol.events.encode_binary) and control messages without `seq`: `subscribed`, `unsubscribed`,
`error`. See docs/protocol.md.

All of a socket's subscriptions share one bounded outbound queue drained by one sender task, so a
slow socket only ever delays itself. A live event that finds the queue empty and the sender
waiting skips both: its frame, made once for every subscriber in its mode, is written to the
socket as it is published (server.api.frame_writer), which is what lets a hundred subscribers cost
the diffusion little. The queue takes everything else: replay, control messages, and every frame
behind one not yet sent or a full transport buffer; when it falls too far behind on live events it is closed with
1013. Replay is the sender's to pull: it reads a replaying subscription's next page of stored
events only once everything queued has been sent, so subscribing to any number of finished tasks
goes as fast as the client reads (server.tasks.feed).

Limits (docs/security.md): a socket follows at most `max_subscriptions` tasks at once; one that
follows nothing for `ws_idle_timeout` seconds is closed with 1000; a message over
MAX_MESSAGE_BYTES is refused with an error, one over `ws_max_message_bytes` never reaches this
module (uvicorn closes the socket with 1009), and uvicorn's pings drop a peer that stops answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from latentcast.server.api.access import OwnEvents, check_access, identify, no_task
from latentcast.server.api.context import Context, context
from latentcast.server.api.errors import parse_json
from latentcast.server.api.frame_writer import EXTENSION, FrameWritingProtocol
from latentcast.server.errors import APIError, error_response
from latentcast.server.observability import metrics
from latentcast.server.protocol.events import PREVIEW_MODES, Event, encode_for, encode_ws_frame
from latentcast.server.protocol.flow import OutboundQueue
from latentcast.server.security.auth import Caller, Credentials, unauthorized
from latentcast.server.security.revocation import RevocationWatch
from latentcast.server.tasks.feed import TaskFeed
from latentcast.server.tasks.ports import StoreUnavailable
from latentcast.server.tasks.service import TaskNotFound

CLOSE_TOO_SLOW = 1013
CLOSE_IDLE = 1000  # a normal closure: nothing was lost, a client that wants more reconnects
CLOSE_KEY_REVOKED = 1008  # policy violation
CLOSE_TRY_AGAIN = 1013  # also "try again later": the store could not be read
CLOSE_FAILED = 1011  # the server could not go on with this socket: the reason says why
MAX_MESSAGE_BYTES = 64 * 1024

log = logging.getLogger("latentcast.api")


class Refused(Exception):
    """A client message refused: answered with an `error` control message, the socket stays open."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclasses.dataclass
class _Subscription:
    previews: str
    feed: TaskFeed | None = None
    unsubscribe: Any = None


class Connection:
    def __init__(self, ws: WebSocket, ctx: Context, caller: Caller | None) -> None:
        self.ws = ws
        self.ctx = ctx
        self.caller = caller  # the handshake's key, if it had one
        self.revocation = RevocationWatch(ctx.keys, self._key_revoked)  # every key it was authenticated by
        self.outbound = OutboundQueue(ctx.settings.subscriber_queue)
        self.wake = asyncio.Event()
        self.parked = False  # the sender waits for `wake` with nothing to send or replay
        # None under a server other than `latentcast serve`'s: then every frame goes through ASGI
        self.frames: FrameWritingProtocol | None = ws.scope.get("extensions", {}).get(EXTENSION)
        self.subscriptions: dict[str, _Subscription] = {}  # task id, or "*" for subscribe_all
        self.closing: tuple[int, str] | None = None
        self.dropped = metrics.DropCounter(metrics.WS_PREVIEWS_DROPPED)
        self.active_at = time.monotonic()  # the last subscription or event
        self.sending_since: float | None = None  # when the send in progress began (_watch_sends)
        self.send_timed_out = False

    async def serve(self) -> None:
        metrics.WS_SUBSCRIBERS.inc()
        sender = asyncio.create_task(self._send_loop())
        watchdog = asyncio.create_task(self._watch_sends(sender))
        idle = asyncio.create_task(self._close_when_idle()) if self.ctx.settings.ws_idle_timeout else None
        if self.caller is not None and self.caller.key is not None:
            self.revocation.add(self.caller.key.digest)
        try:
            while self.closing is None:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                await self._handle(message.get("text") or message.get("bytes") or "")
        except WebSocketDisconnect:
            pass
        finally:
            for subscription in self.subscriptions.values():
                self._stop(subscription)
            sender.cancel()
            watchdog.cancel()
            if idle is not None:
                idle.cancel()
            self.revocation.close()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            metrics.WS_SUBSCRIBERS.dec()
            self.dropped.update(self.outbound)

    # -- incoming ---------------------------------------------------------------------------

    async def _handle(self, raw: str | bytes) -> None:
        request_id = None
        try:
            if len(raw) > MAX_MESSAGE_BYTES:
                raise Refused("message_too_large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
            try:
                message = parse_json(raw, "message")
            except APIError as exc:
                raise Refused("invalid_json", exc.message) from None
            if not isinstance(message, dict):
                raise Refused("invalid_message", "message must be a JSON object")
            request_id = message.get("id") if isinstance(message.get("id"), str) else None
            kind = message.get("type")
            handler = _handlers.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise Refused("unknown_type", f"type must be one of: {', '.join(_handlers)}")
            await handler(self, message)
        except Refused as refused:
            self._control({"type": "error", "code": refused.code, "message": refused.message, "id": request_id})
        except APIError as refused:  # from the access checks: unauthorized, forbidden, not_found
            self._control({"type": "error", "code": refused.type, "message": refused.message, "id": request_id})

    async def _key_holder(self, message: dict[str, Any]) -> Caller | None:
        """Who sent `message`: its `api_key`, else the handshake's key (see `access.identify`)."""
        if "api_key" not in message:
            return self.caller
        caller = await self.ctx.keys.identify(Credentials(text_field(message, "api_key")))
        if caller is not None and caller.key is not None:
            self.revocation.add(caller.key.digest)
        return caller

    async def _require_key(self, message: dict[str, Any]) -> Caller:
        caller = await self._key_holder(message)
        if caller is None:
            raise unauthorized("an API key is required: send api_key, or a token for one task")
        return caller

    async def subscribe(self, message: dict[str, Any]) -> None:
        task_id = text_field(message, "id")
        since = message.get("since", 0)
        if not isinstance(since, int) or isinstance(since, bool) or since < 0:
            raise Refused("invalid_since", "since must be a non-negative integer")
        previews = message.get("previews", "binary")
        if previews not in PREVIEW_MODES:
            raise Refused("invalid_previews", "previews must be one of: binary, json, none")
        token = message.get("token")
        if token is not None and not isinstance(token, str):
            raise Refused("forbidden", "the token does not match this task")
        # the key is checked before the lookup, so that without one nobody learns which ids exist
        caller = await self._require_key(message) if token is None else None
        try:
            record = await self.ctx.service.get(task_id)
        except TaskNotFound:
            raise no_task(task_id) from None
        check_access(record, token, caller)
        await self.follow(task_id, since, previews)

    async def follow(self, task_id: str, since: int, previews: str) -> None:
        """Subscribe this socket to the task's events after `since` (access already checked)."""
        self._make_room(task_id)
        self._unsubscribe(task_id, quiet=True)
        subscription = _Subscription(previews)
        self.subscriptions[task_id] = subscription
        self._control({"type": "subscribed", "id": task_id, "since": since})
        subscription.feed = self.ctx.service.feed(task_id, since, self._push, self.wake.set)
        subscription.feed.start()
        self.wake.set()  # the sender pulls its replay

    async def unsubscribe(self, message: dict[str, Any]) -> None:
        self._unsubscribe(text_field(message, "id"))

    async def subscribe_all(self, message: dict[str, Any]) -> None:
        previews = message.get("previews", "none")
        if previews not in PREVIEW_MODES:
            raise Refused("invalid_previews", "previews must be one of: binary, json, none")
        caller = await self._require_key(message)
        self._make_room("*")
        self._unsubscribe("*", quiet=True)
        service = self.ctx.service
        if caller.sees_all:
            unsubscribe = service.subscribe(None, self._push)
        else:
            own = OwnEvents(service, caller, self._push)
            stop_listening = service.subscribe(None, own)

            def unsubscribe() -> None:
                stop_listening()
                own.close()

        self.subscriptions["*"] = _Subscription(previews, unsubscribe=unsubscribe)
        self._control({"type": "subscribed", "id": "*", "since": None})

    def _key_revoked(self) -> None:
        self.closing = self.closing or (CLOSE_KEY_REVOKED, "API key revoked")
        self.wake.set()

    def _live(self) -> int:
        """Subscriptions still to deliver events (one whose task ended stays until unsubscribed)."""
        return sum(1 for s in self.subscriptions.values() if s.feed is None or not s.feed.done)

    def _make_room(self, subscription_id: str) -> None:
        limit = self.ctx.settings.max_subscriptions
        if subscription_id not in self.subscriptions and self._live() >= limit:
            raise Refused(
                "too_many_subscriptions",
                f"a socket may follow at most {limit} tasks at once (max_subscriptions); unsubscribe from one first",
            )
        self.active_at = time.monotonic()

    async def _close_when_idle(self) -> None:
        """Close the socket once it has followed nothing for `ws_idle_timeout` seconds: an open
        socket holds a connection and memory whether or not anyone listens on it."""
        limit = self.ctx.settings.ws_idle_timeout
        while self.closing is None:
            await asyncio.sleep(self.active_at + limit - time.monotonic())
            now = time.monotonic()
            if self._live():
                self.active_at = now
            elif now - self.active_at >= limit:
                self.closing = (CLOSE_IDLE, f"idle: no subscription for {limit:g} s")
                self.wake.set()
                return

    def _unsubscribe(self, task_id: str, *, quiet: bool = False) -> None:
        subscription = self.subscriptions.pop(task_id, None)
        if subscription is not None:
            self._stop(subscription)
            if not quiet:
                self._control({"type": "unsubscribed", "id": task_id})
        elif not quiet:
            raise Refused("not_subscribed", f"not subscribed to {task_id!r}")

    @staticmethod
    def _stop(subscription: _Subscription) -> None:
        if subscription.feed is not None:
            subscription.feed.close()
        if subscription.unsubscribe is not None:
            subscription.unsubscribe()

    # -- outgoing ---------------------------------------------------------------------------

    def _push(self, event: Event, *, replayed: bool = False) -> None:
        self.active_at = time.monotonic()
        if not replayed and self._write_now(event):
            return
        self.outbound.push(event, replayed=replayed)
        if self.outbound.overflowed and self.closing is None:
            self.closing = (CLOSE_TOO_SLOW, "too slow: resubscribe with since to resume")
        self.wake.set()

    def _write_now(self, event: Event) -> bool:
        """Write a live event's frame to the socket at once, if that cannot change the order of
        anything: the sender is parked with nothing queued, and the transport takes it."""
        if self.frames is None or not self.parked or self.wake.is_set() or len(self.outbound) or self.closing is not None:
            return False
        if not self.frames.write_frame(encode_ws_frame(event, self._mode_for(event))):
            return False
        metrics.WS_SENT.inc()
        metrics.ws_written_at_once.inc()
        return True

    def _control(self, message: dict[str, Any]) -> None:
        self.outbound.push(_Control(message))  # type: ignore[arg-type]
        self.wake.set()

    def _mode_for(self, event: Event) -> str:
        subscription = self.subscriptions.get(event.task_id) or self.subscriptions.get("*")
        return subscription.previews if subscription is not None else "none"

    async def _watch_sends(self, sender: asyncio.Task[None]) -> None:
        """The per-send timeout, kept by one watchdog per socket rather than a task per frame
        (`asyncio.wait_for`): a send returns at once unless the transport's buffer is past its
        high-water mark, so only a client that stopped reading makes one last. That send is
        stopped within half a timeout of its deadline, and the socket closed as too slow."""
        timeout = self.ctx.settings.send_timeout
        while True:
            began = self.sending_since
            if began is not None and time.monotonic() - began >= timeout:
                self.send_timed_out = True
                sender.cancel()
                return
            await asyncio.sleep(timeout / 2 if began is None else began + timeout - time.monotonic())

    async def _send_loop(self) -> None:
        try:
            while True:
                if not await self._replay():
                    self.parked = True
                    try:
                        await self.wake.wait()
                    finally:
                        self.parked = False
                    self.wake.clear()
                if self.closing is not None:
                    await self.ws.close(*self.closing)
                    return
                while len(self.outbound) and self.closing is None:
                    item = self.outbound.pop()
                    if isinstance(item, _Control):
                        data: str | bytes = orjson.dumps(item.message).decode()
                    else:
                        data = encode_for(item, self._mode_for(item))
                    self.sending_since = time.monotonic()
                    await (self.ws.send_bytes(data) if isinstance(data, bytes) else self.ws.send_text(data))
                    self.sending_since = None
                    metrics.WS_SENT.inc()
                self.dropped.update(self.outbound)
        except (asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError) as failure:
            if isinstance(failure, asyncio.CancelledError) and not self.send_timed_out:
                raise  # the socket ended: serve() stops its sender
            self.closing = self.closing or (CLOSE_TOO_SLOW, "send timed out")
            await self._close_now()
        except Exception:
            # Whatever went wrong, the client is told and the socket ends: a socket whose sender
            # died would otherwise stay open and silent for every task it follows.
            log.exception("a socket's sender failed; closing it")
            self.closing = self.closing or (CLOSE_FAILED, "server error: reconnect and resubscribe with since")
            await self._close_now()

    async def _close_now(self) -> None:
        if self.ws.application_state is not WebSocketState.DISCONNECTED:
            with contextlib.suppress(Exception):
                await self.ws.close(*self.closing or (CLOSE_FAILED, ""))

    async def _replay(self) -> bool:
        """Queue the next page of the first subscription still replaying; False when none is.
        Called with the queue drained, so replay goes at the pace of the client's reading."""
        feed = next((s.feed for s in self.subscriptions.values() if s.feed is not None and s.feed.replaying), None)
        if feed is None or self.closing is not None:
            return False
        try:
            await feed.pull()
        except StoreUnavailable as exc:  # the client resumes with since, later
            log.warning("replay of task %s failed (%s); closing the socket", feed.task_id, exc)
            self.closing = (CLOSE_TRY_AGAIN, "replay unavailable: resubscribe with since to resume")
        except Exception as failure:  # e.g. a stored log with a hole (wire.Gap): loud, and the socket ends
            log.exception("replay of task %s failed; closing the socket", feed.task_id)
            self.closing = (CLOSE_FAILED, f"replay of task {feed.task_id} failed: {failure}")
        return True


@dataclasses.dataclass(frozen=True, slots=True)
class _Control:
    """A control message queued in order with the events (it never carries a preview)."""

    message: dict[str, Any]
    preview: None = None
    task_id: str = ""


def text_field(message: dict[str, Any], field: str) -> str:
    """The message's `field`, which must be a non-empty string."""
    value = message.get(field)
    if not isinstance(value, str) or not value:
        raise Refused("invalid_" + field, f"{field} must be a non-empty string")
    return value


MessageHandler = Callable[[Connection, dict[str, Any]], Awaitable[None]]
_handlers: dict[str, MessageHandler] = {}


def handles(kind: str, handler: MessageHandler) -> None:
    """Handle the client messages of type `kind` with `handler` (on every socket of the process)."""
    if kind in _handlers:
        raise ValueError(f"socket messages of type {kind!r} already have a handler")
    _handlers[kind] = handler


handles("subscribe", Connection.subscribe)
handles("unsubscribe", Connection.unsubscribe)
handles("subscribe_all", Connection.subscribe_all)


async def endpoint(ws: WebSocket) -> None:
    try:
        caller = await identify(ws)  # a bad key in the handshake is refused before the socket opens
    except APIError as refused:
        await ws.send_denial_response(error_response(refused))
        return
    await ws.accept()
    await Connection(ws, context(ws), caller).serve()
