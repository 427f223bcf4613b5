"""The channel between the API process and a worker process it spawned: calls and notes, named by Protocols.

One Unix socket (a socketpair the worker process inherits). A frame is a 13-byte header (the
body's length, 4 bytes big-endian; the frame's kind, 1 byte; its call's id, 8 bytes) and a pickle
of its body. Pickle because both ends are this package in processes the API process itself
started (never a peer from the network), and it carries the task service's own types (records,
events with their preview bytes, jobs, fences, the exceptions they raise) without a schema of
their own. The kind and the id stand outside the pickle, so that a body that cannot be read
still gets its answer, an error, to the right call.

An operation is named by a member of a Protocol (server.worker_process.messages), never by a
string written where it is used: `call(ToApiProcess.next_job, worker)` sends the member's name,
typed by its signature, and `serve(target, ToApiProcess)` answers, from `target`, only the names
that Protocol declares.

- `call(op, ...)` sends a request and awaits its answer (or the exception the other side raised);
- `note(op, ...)` sends a one-way message and returns at once: writes go to the transport's
  buffer and are never awaited, so neither side ever waits for the other to read. The frames one
  loop callback sends leave together, in one write when it returns: a worker's step (its preview
  timing and its events) wakes the API process once, not once a frame;
- `serve(target, protocol)` reads until the other side is gone. Requests are answered in the
  order they arrive (an event log must be appended in order), except the ops named `concurrent`,
  which may wait long (taking a job waits for one) and run as tasks of their own.

Nothing the other side sends ends `serve` but its going away: an op its Protocol does not name,
a handler's failure, an exception that does not survive pickling, a result that cannot be
pickled and a body that cannot be unpickled are each answered as an error to the call (or
logged, for a note). Once the other side is gone, every call still waiting fails with
`ChannelClosed`, and so does every call made after.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import pickle
import struct
import typing
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Concatenate, ParamSpec, TypeVar

from latentcast.server.tasks.ports import StoreUnavailable

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger("latentcast.channel")
_HEADER = struct.Struct(">IBQ")
_FIRST, _CALL, _NOTE, _ANSWER, _FAILURE = range(5)


class ChannelClosed(StoreUnavailable, ConnectionError):
    """The other process is gone: its answer will never come. To a worker process that is its
    task service gone: it waits as in any outage, and its process ends at once anyway
    (server.worker_process.worker_side)."""


class UnknownOperation(LookupError):
    """The other side asked for an operation that the Protocol this side serves does not name."""


class RemoteFailure(RuntimeError):
    """A failure that could not cross as itself: the other side's exception did not survive
    pickling, or a request or an answer could not be pickled or read. Says what it was."""


def operations(protocol: type) -> frozenset[str]:
    """The names of the operations a Protocol declares: its public methods and its bases'."""
    return frozenset(
        name
        for klass in protocol.__mro__
        if klass not in (typing.Protocol, typing.Generic, object)
        for name, member in vars(klass).items()
        if not name.startswith("_") and callable(member)
    )


class Channel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._running: set[asyncio.Task[None]] = set()
        self._outgoing: list[bytes] = []  # frames sent since the loop last ran `_flush`
        self.closed = False

    @classmethod
    async def over(cls, sock: Any) -> Channel:
        """A channel on one end of a connected Unix socket (a socketpair's)."""
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(reader, writer)

    async def call(self, op: Callable[Concatenate[Any, P], Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run `op` (a Protocol's method) on the other side and return its answer."""
        if self.closed:
            raise ChannelClosed(f"{op.__name__}: the other process is gone")
        body = pickle.dumps((op.__name__, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        ident = next(self._ids)
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending[ident] = answer
        try:
            self._send(_CALL, ident, body)
            return await answer
        finally:
            self._pending.pop(ident, None)  # (a call given up leaves nothing behind)

    def note(self, op: Callable[Concatenate[Any, P], None], *args: P.args, **kwargs: P.kwargs) -> None:
        """Tell the other side `op` (a Protocol's method) without waiting for anything."""
        if not self.closed:
            self._send(_NOTE, 0, pickle.dumps((op.__name__, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL))

    def send_first(self, value: Any) -> None:
        """The one message before any other (what the worker process is to be), read by `first`."""
        self._send(_FIRST, 0, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

    async def first(self) -> Any:
        kind, _, body = await self._frame()
        if kind != _FIRST:
            raise RemoteFailure(f"the channel's first frame is of kind {kind}, not the first message")
        return pickle.loads(body)

    def close(self) -> None:
        """Close this end: the other side's `serve` returns, and so does this side's, failing the
        calls still waiting for an answer."""
        self._flush()
        self.closed = True
        self._writer.close()

    async def serve(self, target: object, protocol: type, *, concurrent: Collection[Callable[..., Any]] = ()) -> None:
        """Answer the other side's calls and notes of `protocol` from `target`'s methods until the
        other side is gone; then end the calls still running and fail those still waiting."""
        ops = operations(protocol)
        waiting_ops = {op.__name__ for op in concurrent}
        try:
            while True:
                try:
                    kind, ident, body = await self._frame()
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if kind in (_ANSWER, _FAILURE):
                    self._settle(kind, ident, body)
                    continue
                if kind not in (_CALL, _NOTE):
                    log.error("a frame of unknown kind %d on the channel, ignored", kind)
                    continue
                try:
                    op, args, kwargs = pickle.loads(body)
                except Exception as failure:
                    self._refuse(kind, ident, RemoteFailure(f"a request that could not be read ({_named(failure)})"))
                    continue
                handler = getattr(target, op, None) if op in ops else None
                if handler is None:
                    self._refuse(kind, ident, UnknownOperation(f"{protocol.__name__} has no operation {op!r}"), op)
                    continue
                answering = self._answer(kind, ident, op, handler, args, kwargs)
                if op in waiting_ops:
                    task = asyncio.get_running_loop().create_task(answering)
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
                else:
                    await answering
        finally:
            await self._closed()

    async def _answer(
        self, kind: int, ident: int, op: str, handler: Callable[..., Any], args: Any, kwargs: Any
    ) -> None:
        try:
            result = handler(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        except Exception as failure:  # the caller gets it, as if it had called the handler itself
            self._refuse(kind, ident, failure, op)
            return
        if kind == _NOTE:
            return
        try:
            body = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as failure:
            self._refuse(kind, ident, RemoteFailure(f"{op} answered what cannot be pickled ({_named(failure)})"))
            return
        self._send(_ANSWER, ident, body)

    def _refuse(self, kind: int, ident: int, failure: Exception, op: str = "") -> None:
        """Answer a call with `failure`; a note has nobody to answer: it is logged."""
        if kind == _CALL:
            self._send(_FAILURE, ident, _pickled_failure(failure))
        else:
            log.error("note %s failed: %s", op or "(unread)", _named(failure), exc_info=failure)

    def _settle(self, kind: int, ident: int, body: bytes) -> None:
        answer = self._pending.pop(ident, None)
        if answer is None or answer.done():
            return  # a call given up (cancelled) meanwhile
        try:
            value = pickle.loads(body)
        except Exception as failure:
            answer.set_exception(RemoteFailure(f"an answer that could not be read ({_named(failure)})"))
            return
        if kind == _FAILURE:
            answer.set_exception(value if isinstance(value, BaseException) else RemoteFailure(repr(value)))
        else:
            answer.set_result(value)

    def _send(self, kind: int, ident: int, body: bytes) -> None:
        if self.closed:
            return
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing += (_HEADER.pack(len(body), kind, ident), body)

    def _flush(self) -> None:
        if self._outgoing and not self.closed:
            self._writer.writelines(self._outgoing)
        self._outgoing.clear()

    async def _frame(self) -> tuple[int, int, bytes]:
        length, kind, ident = _HEADER.unpack(await self._reader.readexactly(_HEADER.size))
        return kind, ident, await self._reader.readexactly(length)

    async def _closed(self) -> None:
        self.closed = True
        for ident, answer in self._pending.items():
            if not answer.done():
                answer.set_exception(ChannelClosed(f"call {ident}: the other process is gone"))
        self._pending.clear()
        running = list(self._running)
        for task in running:
            task.cancel()
        # When `serve` returns, nothing it started still runs.
        await asyncio.gather(*running, return_exceptions=True)
        with contextlib.suppress(Exception):
            self._writer.close()


def _pickled_failure(failure: Exception) -> bytes:
    """The exception as the other side will raise it: itself, if it survives a round trip through
    pickle (an exception whose `__init__` wants other arguments than its `args` does not), else a
    `RemoteFailure` that names it."""
    with contextlib.suppress(Exception):
        body = pickle.dumps(failure, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(body)
        return body
    return pickle.dumps(RemoteFailure(_named(failure)), protocol=pickle.HIGHEST_PROTOCOL)


def _named(failure: BaseException) -> str:
    return f"{type(failure).__name__}: {failure}"
