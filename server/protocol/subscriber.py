"""One subscriber, free of I/O: what it follows, what it is sent next, and when it ends.

A subscriber is one WebSocket (any number of task subscriptions, and `subscribe_all`) or one SSE
stream (one task). Like python-websockets' `Protocol`, a `Subscriber` does no I/O and keeps no
time of its own: its transport's loop (server.api.subscriber_loop) tells it what happened and
asks it what to do.

What happened (inputs):
  follow / follow_all / unfollow / refuse   a client's requests, once the loop checked access
  live(event)                               an event as it is published
  page_read(events) / page_failed / page_unavailable   the stored log page it asked for
  message_sent()                            the message it gave has been written
  key_revoked / send_timed_out / handle_timer          the world outside
What to do (outputs):
  next_message()   the next message to send, one at a time, in order
  next_page()      a page of a task's stored log to read (only with nothing left to send)
  close            once decided: the WebSocket close code and reason (an SSE stream just ends,
                   with a `stream_error` block when `close.failure` says the server failed)
  timer()          when to call `handle_timer` (the idle limit)
  following(id)    whether the loop still needs a task's live events

Each task subscription replays the stored log after its `since`, a page at a time as the client
drains what it was sent, while live events of the task wait (a page of them at most: the store
has every one, so older ones are read again), then takes live events. Everything passes through
the subscription's `Cursor`, so each event arrives exactly once and in seq order across the seam;
a hole among live events (possible when they come from another process) sends it back to the
log from where it stands. Flow control is protocol.flow's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from latentcast.server.protocol.client_messages import Refused
from latentcast.server.protocol.events import RecordedEvent
from latentcast.server.protocol.flow import OutboundQueue
from latentcast.server.protocol.messages import ControlMessage, EventMessage, ServerMessage, event_message
from latentcast.wire import Cursor, Gap

CLOSE_NORMAL = 1000  # idle, or an SSE stream whose task ended: nothing was lost
CLOSE_KEY_REVOKED = 1008  # policy violation
CLOSE_FAILED = 1011  # the server could not go on with this subscriber: the reason says why
CLOSE_TRY_AGAIN = 1013  # too slow, or the store could not be read: resubscribe with since

# Events read from the store at once: small enough that a page is sent in a moment, large enough
# that a long log is a handful of reads.
REPLAY_PAGE = 128

EVERY_TASK = "*"  # the subscription of `subscribe_all`


@dataclasses.dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str
    failure: str | None = None  # the `stream_error` code an SSE stream ends with, when the server failed


@dataclasses.dataclass(frozen=True, slots=True)
class PageRequest:
    """Read `limit` events of the task's stored log after seq `after`."""

    task_id: str
    after: int
    limit: int = REPLAY_PAGE


@dataclasses.dataclass(eq=False, slots=True)
class _Subscription:
    previews: str
    cursor: Cursor | None = None  # None for subscribe_all, which replays nothing and takes events as they come
    held: list[RecordedEvent] | None = None  # live events waiting while the log is replayed; None once caught up

    @property
    def live(self) -> bool:
        """Still to deliver events (one whose task ended stays until unsubscribed, taking no room)."""
        return self.cursor is None or not self.cursor.done


class Subscriber:
    def __init__(
        self,
        *,
        queue_size: int,
        max_subscriptions: int,
        replies: bool,
        ends_with_task: bool,
        idle_timeout: float | None,
        clock: Callable[[], float],
    ) -> None:
        self._queue = OutboundQueue(queue_size)
        self._max_subscriptions = max_subscriptions
        self._replies = replies
        self._ends_with_task = ends_with_task
        self._idle_timeout = idle_timeout or None
        self._clock = clock
        self._subscriptions: dict[str, _Subscription] = {}  # task id, or EVERY_TASK
        self._replaying: dict[str, _Subscription] = {}  # those still reading their log, in the order they came
        self._sending: ServerMessage | None = None
        self._reading: tuple[PageRequest, _Subscription] | None = None
        self._idle_since: float | None = clock()  # None while it follows something
        self.close: Close | None = None

    @classmethod
    def socket(
        cls, *, queue_size: int, max_subscriptions: int, idle_timeout: float | None, clock: Callable[[], float]
    ) -> Subscriber:
        """A WebSocket: any number of subscriptions, a reply to each request, closed when idle."""
        return cls(
            queue_size=queue_size, max_subscriptions=max_subscriptions, replies=True, ends_with_task=False,
            idle_timeout=idle_timeout, clock=clock,
        )

    @classmethod
    def stream(cls, *, queue_size: int, clock: Callable[[], float]) -> Subscriber:
        """An SSE stream: one task's events, no replies, ended after the task's terminal event."""
        return cls(
            queue_size=queue_size, max_subscriptions=1, replies=False, ends_with_task=True, idle_timeout=None,
            clock=clock,
        )

    @property
    def previews_dropped(self) -> int:
        """Previews sent without their image so far (a slow client's latest-wins), for the metrics."""
        return self._queue.previews_dropped

    # -- requests -------------------------------------------------------------------------------

    def follow(self, task_id: str, since: int, previews: str) -> None:
        """Subscribe to the task's events after `since` (access already checked); again, from the
        new `since` in the new mode. Raises `Refused` when it would follow too many tasks."""
        self._make_room(task_id)
        self._reply({"type": "subscribed", "id": task_id, "since": since})
        subscription = _Subscription(previews, Cursor(last=since), held=[])
        self._subscriptions[task_id] = self._replaying[task_id] = subscription
        self._idle_since = None

    def follow_all(self, previews: str) -> None:
        """Every task's events from now on, as they come (the loop passes on only those the
        caller may see). Raises `Refused` when it would follow too many."""
        self._make_room(EVERY_TASK)
        self._reply({"type": "subscribed", "id": EVERY_TASK, "since": None})
        self._subscriptions[EVERY_TASK] = _Subscription(previews)
        self._idle_since = None

    def unfollow(self, task_id: str) -> None:
        """Stop a subscription. What was queued for it before is still sent, then `unsubscribed`."""
        if task_id not in self._subscriptions:
            raise Refused("not_subscribed", f"not subscribed to {task_id!r}")
        self._forget(task_id)
        self._reply({"type": "unsubscribed", "id": task_id})
        self._maybe_idle()

    def refuse(self, refused: Refused, reply_id: str | None) -> None:
        """Answer a client message with an `error`; the socket stays open."""
        self._reply({"type": "error", "code": refused.code, "message": refused.message, "id": reply_id})

    def following(self, task_id: str) -> bool:
        """Whether the task's live events are still wanted: the loop stops listening otherwise."""
        subscription = self._subscriptions.get(task_id)
        return subscription is not None and subscription.live

    # -- events ---------------------------------------------------------------------------------

    def live(self, event: RecordedEvent) -> None:
        """An event as it is published, for a task this subscriber follows or for subscribe_all."""
        subscription = self._subscriptions.get(event.task_id)
        if subscription is not None and subscription.cursor is not None:
            self._offer(event.task_id, subscription, event)
        elif (everything := self._subscriptions.get(EVERY_TASK)) is not None:
            self._push(event_message(event, everything.previews), paced=False)

    def next_page(self) -> PageRequest | None:
        """The next page of stored log to read, once everything before it has been sent (so a
        replay goes at the pace of the client's reading), one read at a time."""
        if self.close is not None or self._reading is not None or self._sending is not None or len(self._queue):
            return None
        for task_id, subscription in self._replaying.items():
            assert subscription.cursor is not None
            request = PageRequest(task_id, subscription.cursor.last)
            self._reading = (request, subscription)
            return request
        return None

    def page_read(self, events: Sequence[RecordedEvent]) -> None:
        """The page `next_page` asked for; past the log's end, the live events held meanwhile follow."""
        request, subscription = self._take_reading()
        if self._subscriptions.get(request.task_id) is not subscription:
            return  # unsubscribed, or subscribed again from another seq, while it was read
        assert subscription.cursor is not None and subscription.held is not None
        try:
            for event in events:
                if subscription.cursor.admit(event):
                    self._deliver(request.task_id, subscription, event, replayed=True)
        except Gap as hole:  # the stored log itself has a hole: nothing can fill it
            self._close(Close(CLOSE_FAILED, f"replay of task {request.task_id} failed: {hole}", "replay_failed"))
            return
        if subscription.cursor.done or len(events) < request.limit:
            held, subscription.held = subscription.held, None
            self._replaying.pop(request.task_id, None)  # (gone already if its terminal event was in the page)
            for event in held:
                self._offer(request.task_id, subscription, event)  # after a hole the rest waits again

    def page_failed(self, error: str) -> None:
        """The page could not be read for good (a log that cannot be decoded): the subscriber ends."""
        request, _ = self._take_reading()
        self._close(Close(CLOSE_FAILED, f"replay of task {request.task_id} failed: {error}", "replay_failed"))

    def page_unavailable(self) -> None:
        """The store cannot be read now (Redis down, a full disk): the client resumes with since, later."""
        self._take_reading()
        self._close(Close(CLOSE_TRY_AGAIN, "replay unavailable: resubscribe with since to resume"))

    # -- sending --------------------------------------------------------------------------------

    def next_message(self) -> ServerMessage | None:
        """The next message to send, or None: nothing queued, one still being sent, or closing
        (a subscriber that is to close is sent nothing more)."""
        if self.close is not None or self._sending is not None or not len(self._queue):
            return None
        self._sending = self._queue.pop()
        return self._sending

    def message_sent(self) -> None:
        message, self._sending = self._sending, None
        if self._ends_with_task and isinstance(message, EventMessage) and message.event.terminal:
            self._close(Close(CLOSE_NORMAL, "the task ended"))

    def has_work(self) -> bool:
        """Whether the loop has something to do: a message to send, a page to read, a close."""
        if self.close is not None:
            return True
        if self._sending is not None or self._reading is not None:
            return False
        return bool(len(self._queue) or self._replaying)

    # -- the world outside ----------------------------------------------------------------------

    def key_revoked(self) -> None:
        self._close(Close(CLOSE_KEY_REVOKED, "API key revoked"))

    def send_timed_out(self) -> None:
        """A send took longer than the send timeout: the client stopped reading."""
        self._close(Close(CLOSE_TRY_AGAIN, "send timed out"))

    def timer(self) -> float | None:
        """When `handle_timer` may close this subscriber as idle; None while it follows something."""
        if self._idle_timeout is None or self._idle_since is None or self.close is not None:
            return None
        return self._idle_since + self._idle_timeout

    def handle_timer(self) -> None:
        """Close a subscriber that has followed nothing for the idle timeout: an open socket holds a
        connection and memory whether or not anyone listens on it."""
        deadline = self.timer()
        if deadline is not None and self._clock() >= deadline:
            self._close(Close(CLOSE_NORMAL, f"idle: no subscription for {self._idle_timeout:g} s"))

    # -- within ---------------------------------------------------------------------------------

    def _make_room(self, subscription_id: str) -> None:
        """Room for one more subscription (one replaced takes none), else `Refused`. The old one of
        the same id goes, with whatever it held, but not what was already queued for it."""
        if subscription_id not in self._subscriptions:
            live = sum(1 for subscription in self._subscriptions.values() if subscription.live)
            if live >= self._max_subscriptions:
                raise Refused(
                    "too_many_subscriptions",
                    f"a socket may follow at most {self._max_subscriptions} tasks at once (max_subscriptions); "
                    "unsubscribe from one first",
                )
        self._forget(subscription_id)

    def _forget(self, subscription_id: str) -> None:
        self._subscriptions.pop(subscription_id, None)
        self._replaying.pop(subscription_id, None)

    def _offer(self, task_id: str, subscription: _Subscription, event: RecordedEvent) -> None:
        assert subscription.cursor is not None
        if subscription.held is not None:  # the log is being replayed: it comes after
            if len(subscription.held) < REPLAY_PAGE:
                subscription.held.append(event)
            else:
                subscription.held = [event]  # the older ones are in the store, where the replay reads them
            return
        try:
            admitted = subscription.cursor.admit(event)
        except Gap:  # some went missing on the way: read them from the store, this one waits
            subscription.held = [event]
            self._replaying[task_id] = subscription
            return
        if admitted:
            self._deliver(task_id, subscription, event, replayed=False)

    def _deliver(self, task_id: str, subscription: _Subscription, event: RecordedEvent, *, replayed: bool) -> None:
        self._push(event_message(event, subscription.previews), paced=replayed)
        if not subscription.live:  # its terminal event
            self._replaying.pop(task_id, None)
            self._maybe_idle()

    def _push(self, message: ServerMessage, *, paced: bool) -> None:
        if self.close is not None:
            return
        self._queue.push(message, paced=paced)
        if self._queue.overflowed:
            self._close(Close(CLOSE_TRY_AGAIN, "too slow: resubscribe with since to resume"))

    def _reply(self, body: dict[str, Any]) -> None:
        if self._replies:
            self._push(ControlMessage(body), paced=True)  # answers the client's own requests

    def _take_reading(self) -> tuple[PageRequest, _Subscription]:
        assert self._reading is not None, "no page was asked for"
        reading, self._reading = self._reading, None
        return reading

    def _maybe_idle(self) -> None:
        if self._idle_since is None and not any(subscription.live for subscription in self._subscriptions.values()):
            self._idle_since = self._clock()

    def _close(self, close: Close) -> None:
        if self.close is None:
            self.close = close
