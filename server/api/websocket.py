"""`WS /v1/ws` (also at `/v1`, where Wiro clients connect): one socket, many task subscriptions.

Client messages (JSON text):
  {"type": "subscribe", "id", "token", "since": 0, "previews": "binary" | "json" | "none"}
  {"type": "unsubscribe", "id"}
  {"type": "task_info", "tasktoken"}                 Wiro's subscribe: by token, JSON only
  {"type": "subscribe_all", "previews": "none"}      every task's lifecycle, for dashboards
Server messages: events (JSON text; a preview in `binary` mode is a binary frame, see
protocol.events.encode_binary) and control messages without `seq`: `subscribed`, `unsubscribed`,
`error`. See docs/protocol.md.

All of a socket's subscriptions share one bounded outbound queue drained by one sender task, so a
slow socket only ever delays itself; when it falls too far behind it is closed with 1013.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from server.api.context import Context, context
from server.observability import metrics
from server.protocol.events import PREVIEW_MODES, Event, encode_for
from server.protocol.flow import OutboundQueue
from server.tasks.feed import TaskFeed

CLOSE_TOO_SLOW = 1013
MAX_MESSAGE_BYTES = 64 * 1024


class _Refused(Exception):
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
    def __init__(self, ws: WebSocket, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx
        self.outbound = OutboundQueue(ctx.settings.subscriber_queue)
        self.wake = asyncio.Event()
        self.subscriptions: dict[str, _Subscription] = {}  # task id, or "*" for subscribe_all
        self.closing: tuple[int, str] | None = None
        self.dropped = metrics.DropCounter(metrics.WS_PREVIEWS_DROPPED)

    async def serve(self) -> None:
        metrics.WS_SUBSCRIBERS.inc()
        sender = asyncio.create_task(self._send_loop())
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
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            metrics.WS_SUBSCRIBERS.dec()
            self.dropped.update(self.outbound)

    # -- incoming ---------------------------------------------------------------------------

    async def _handle(self, raw: str | bytes) -> None:
        request_id = None
        try:
            if len(raw) > MAX_MESSAGE_BYTES:
                raise _Refused("message_too_large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
            try:
                message = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise _Refused("invalid_json", "message is not valid JSON") from None
            if not isinstance(message, dict):
                raise _Refused("invalid_message", "message must be a JSON object")
            request_id = message.get("id") if isinstance(message.get("id"), str) else None
            kind = message.get("type")
            if kind == "subscribe":
                await self._subscribe(message)
            elif kind == "task_info":
                await self._task_info(message)
            elif kind == "unsubscribe":
                self._unsubscribe(_text(message, "id"))
            elif kind == "subscribe_all":
                self._subscribe_all(message)
            else:
                raise _Refused(
                    "unknown_type", "type must be one of: subscribe, unsubscribe, task_info, subscribe_all"
                )
        except _Refused as refused:
            self._control({"type": "error", "code": refused.code, "message": refused.message, "id": request_id})

    async def _subscribe(self, message: dict[str, Any]) -> None:
        task_id = _text(message, "id")
        since = message.get("since", 0)
        if not isinstance(since, int) or isinstance(since, bool) or since < 0:
            raise _Refused("invalid_since", "since must be a non-negative integer")
        previews = message.get("previews", "binary")
        if previews not in PREVIEW_MODES:
            raise _Refused("invalid_previews", "previews must be one of: binary, json, none")
        record = await self.ctx.service.store.get(task_id)
        token = message.get("token")
        if record is None:
            raise _Refused("not_found", f"no task {task_id!r}")
        if token is not None and not (isinstance(token, str) and hmac.compare_digest(token.encode(), record.token.encode())):
            raise _Refused("forbidden", "the token does not match this task")
        await self._follow(task_id, since, previews)

    async def _task_info(self, message: dict[str, Any]) -> None:
        token = _text(message, "tasktoken")
        record = await self.ctx.service.store.get_by_token(token)
        if record is None:
            raise _Refused("not_found", "no task has this tasktoken")
        await self._follow(record.id, 0, "none")

    async def _follow(self, task_id: str, since: int, previews: str) -> None:
        self._unsubscribe(task_id, quiet=True)
        subscription = _Subscription(previews)
        self.subscriptions[task_id] = subscription
        self._control({"type": "subscribed", "id": task_id, "since": since})
        subscription.feed = TaskFeed(self.ctx.service.store, self.ctx.service.bus, task_id, since, self._push)
        await subscription.feed.start()

    def _subscribe_all(self, message: dict[str, Any]) -> None:
        previews = message.get("previews", "none")
        if previews not in PREVIEW_MODES:
            raise _Refused("invalid_previews", "previews must be one of: binary, json, none")
        self._unsubscribe("*", quiet=True)
        self.subscriptions["*"] = _Subscription(previews, unsubscribe=self.ctx.service.bus.subscribe(None, self._push))
        self._control({"type": "subscribed", "id": "*", "since": None})

    def _unsubscribe(self, task_id: str, *, quiet: bool = False) -> None:
        subscription = self.subscriptions.pop(task_id, None)
        if subscription is not None:
            self._stop(subscription)
            if not quiet:
                self._control({"type": "unsubscribed", "id": task_id})
        elif not quiet:
            raise _Refused("not_subscribed", f"not subscribed to {task_id!r}")

    @staticmethod
    def _stop(subscription: _Subscription) -> None:
        if subscription.feed is not None:
            subscription.feed.close()
        if subscription.unsubscribe is not None:
            subscription.unsubscribe()

    # -- outgoing ---------------------------------------------------------------------------

    def _push(self, event: Event) -> None:
        self.outbound.push(event)
        if self.outbound.overflowed and self.closing is None:
            self.closing = (CLOSE_TOO_SLOW, "too slow: resubscribe with since to resume")
        self.wake.set()

    def _control(self, message: dict[str, Any]) -> None:
        self.outbound.push(_Control(message))  # type: ignore[arg-type]
        self.wake.set()

    def _mode_for(self, event: Event) -> str:
        subscription = self.subscriptions.get(event.task_id) or self.subscriptions.get("*")
        return subscription.previews if subscription is not None else "none"

    async def _send_loop(self) -> None:
        timeout = self.ctx.settings.send_timeout
        try:
            while True:
                await self.wake.wait()
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
                    send = self.ws.send_bytes(data) if isinstance(data, bytes) else self.ws.send_text(data)
                    await asyncio.wait_for(send, timeout)
                    metrics.WS_SENT.inc()
                self.dropped.update(self.outbound)
        except (TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
            self.closing = self.closing or (CLOSE_TOO_SLOW, "send timed out")
            if self.ws.application_state is not WebSocketState.DISCONNECTED:
                with contextlib.suppress(Exception):
                    await self.ws.close(*self.closing)


@dataclasses.dataclass(frozen=True, slots=True)
class _Control:
    """A control message queued in order with the events (it never carries a preview)."""

    message: dict[str, Any]
    preview: None = None
    task_id: str = ""


def _text(message: dict[str, Any], field: str) -> str:
    value = message.get(field)
    if not isinstance(value, str) or not value:
        raise _Refused("invalid_" + field, f"{field} must be a non-empty string")
    return value


async def endpoint(ws: WebSocket) -> None:
    await ws.accept()
    await Connection(ws, context(ws)).serve()
