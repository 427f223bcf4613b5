"""The I/O around one subscriber (protocol.subscriber), shared by the WebSocket and SSE transports.

The `Subscriber` decides; this loop only carries out: it listens on the bus to the tasks the
subscriber follows (from the moment it follows one, before the first page of its log is read, so
that nothing recorded in between is missed: server.tasks.shared_pages), reads the pages of stored
log it asks for, watches the API keys it was authenticated by, keeps its idle timer, and hands
the transport each message to send, in order (`messages`), until the subscriber is to close.

A transport that can write a frame at once without waiting gives a `DirectWriter` (a WebSocket
under `latentcast serve`: server.api.frame_writer). A live event is then written as it is
published, within the publisher's call, when no send is in progress and the transport's buffer
takes it: no task wakes for it, which is what lets a hundred subscribers cost the diffusion little
(bench/README.md). Everything else goes through `messages` and the transport's own awaited send.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Protocol

from latentcast.server.api.access import OwnEvents
from latentcast.server.protocol.client_messages import Refused
from latentcast.server.protocol.events import RecordedEvent
from latentcast.server.protocol.messages import ServerMessage
from latentcast.server.protocol.subscriber import EVERY_TASK, PageRequest, Subscriber
from latentcast.server.security.auth import Caller
from latentcast.server.security.keyring import KeyRing
from latentcast.server.security.revocation import RevocationWatch
from latentcast.server.tasks.ports import StoreUnavailable
from latentcast.server.tasks.service import TaskService

log = logging.getLogger("latentcast.api")


class DirectWriter(Protocol):
    def ready(self) -> bool:
        """Whether a message written now goes out at once (else it waits for the awaited send)."""
        ...

    def write(self, message: ServerMessage) -> None: ...


class SubscriberLoop:
    def __init__(
        self, subscriber: Subscriber, service: TaskService, keys: KeyRing, direct: DirectWriter | None = None
    ) -> None:
        self.subscriber = subscriber
        self._service = service
        self._direct = direct
        self._wake = asyncio.Event()  # the subscriber has work for `messages`
        self._listening: dict[str, Callable[[], None]] = {}  # task id (or EVERY_TASK) -> stop listening
        self._revocation = RevocationWatch(keys, self._key_revoked)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    # -- requests (access already checked) ------------------------------------------------------

    def follow(self, task_id: str, since: int, previews: str) -> None:
        self.subscriber.follow(task_id, since, previews)
        self._stop_listening(task_id)
        self._listening[task_id] = self._service.subscribe(task_id, self._on_live)
        self._settled()

    def follow_all(self, previews: str, caller: Caller) -> None:
        """Every task's events, or only those of the tasks `caller` sees."""
        self.subscriber.follow_all(previews)
        self._stop_listening(EVERY_TASK)
        if caller.sees_all:
            self._listening[EVERY_TASK] = self._service.subscribe(None, self._on_live)
        else:
            own = OwnEvents(self._service, caller, self._on_live)
            stop = self._service.subscribe(None, own)

            def stop_own() -> None:
                stop()
                own.close()

            self._listening[EVERY_TASK] = stop_own
        self._settled()

    def unfollow(self, task_id: str) -> None:
        self.subscriber.unfollow(task_id)
        self._stop_listening(task_id)
        self._settled()

    def refuse(self, refused: Refused, reply_id: str | None) -> None:
        self.subscriber.refuse(refused, reply_id)
        self._settled()

    def watch_key(self, key_digest: str) -> None:
        """Close the subscriber once this API key is revoked."""
        self._revocation.add(key_digest)

    # -- sending --------------------------------------------------------------------------------

    async def messages(self, keepalive: float | None = None) -> AsyncGenerator[ServerMessage | None, None]:
        """Each message to send, in order, reading the stored log as the subscriber asks for it; the
        next one is taken once the transport has sent the last. Ends when the subscriber is to
        close (`subscriber.close`). With `keepalive`, None after that many seconds with nothing
        sent, for the transport to keep the connection alive."""
        subscriber = self.subscriber
        self._settled()
        while True:
            message = subscriber.next_message()
            if message is not None:
                yield message
                subscriber.message_sent()
                continue
            if subscriber.close is not None:
                return
            request = subscriber.next_page()
            if request is not None:
                await self._read(request)
                continue
            self._wake.clear()
            try:
                async with asyncio.timeout(keepalive):
                    await self._wake.wait()
            except TimeoutError:
                yield None

    def close(self) -> None:
        """Stop listening, watching and timing: the transport is done with the subscriber."""
        for stop in self._listening.values():
            stop()
        self._listening.clear()
        self._revocation.close()
        if self._timer is not None:
            self._timer.cancel()

    # -- within ---------------------------------------------------------------------------------

    def _on_live(self, event: RecordedEvent) -> None:
        subscriber = self.subscriber
        subscriber.live(event)
        if self._direct is not None:
            while self._direct.ready() and (message := subscriber.next_message()) is not None:
                self._direct.write(message)
                subscriber.message_sent()
        if not subscriber.following(event.task_id):
            self._stop_listening(event.task_id)
        self._settled()

    async def _read(self, request: PageRequest) -> None:
        subscriber = self.subscriber
        try:
            page = await self._service.replay_page(request.task_id, request.after, limit=request.limit)
        except StoreUnavailable as exc:
            log.warning("replay of task %s failed (%s); closing its subscriber", request.task_id, exc)
            subscriber.page_unavailable()
        except Exception as failure:  # a stored log that cannot be read back: loud, and the subscriber ends
            log.exception("replay of task %s failed; closing its subscriber", request.task_id)
            subscriber.page_failed(str(failure))
        else:
            subscriber.page_read(page)
            if subscriber.close is not None and subscriber.close.failure is not None:
                log.error("%s; closing its subscriber", subscriber.close.reason)  # a hole in the stored log
            if not subscriber.following(request.task_id):
                self._stop_listening(request.task_id)
        self._settled()

    def _key_revoked(self) -> None:
        self.subscriber.key_revoked()
        self._settled()

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self.subscriber.handle_timer()
        self._settled()

    def _settled(self) -> None:
        """After any input: `messages` woken if the subscriber has work for it, and the timer set
        for when the subscriber wants it."""
        if self.subscriber.has_work():
            self._wake.set()
        deadline = self.subscriber.timer()
        if deadline != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            loop = asyncio.get_running_loop()
            self._timer = None if deadline is None else loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline

    def _stop_listening(self, key: str) -> None:
        stop = self._listening.pop(key, None)
        if stop is not None:
            stop()
