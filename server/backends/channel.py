"""A local channel between the API process and a worker process it spawned: calls and notes.

One Unix socket (a socketpair the worker inherits), frames of a 4-byte big-endian length and a
pickle. Pickle because both ends are this package in processes the API process itself started
(never a peer from the network), and it carries the ports' own types (records, events with their
preview bytes, jobs, fences, the exceptions they raise) without a schema of their own.

- `call(op, ...)` sends a request and awaits its answer (or the exception the handler raised);
- `note(op, ...)` sends a one-way message and returns at once: writes go to the transport's
  buffer and are never awaited, so neither side ever waits for the other to read;
- `serve(handlers)` reads until the other side is gone. Requests are answered in the order they
  arrive (an event log must be appended in order), except the ops named `concurrent`, which may
  wait long (taking a job waits for one) and run as tasks of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import struct
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from latentcast.server.tasks.ports import StoreUnavailable

Handler = Callable[..., Awaitable[Any] | Any]
log = logging.getLogger("latentcast.channel")
_HEADER = struct.Struct(">I")
_CALL, _NOTE, _ANSWER, _FAILURE = range(4)


class ChannelClosed(StoreUnavailable, ConnectionError):
    """The other process is gone: its answer will never come. To a worker process that is its
    store gone: it waits as in any outage, and its process ends at once anyway (worker_process)."""


class Channel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._running: set[asyncio.Task[None]] = set()
        self.closed = False

    @classmethod
    async def over(cls, sock: Any) -> Channel:
        """A channel on one end of a connected Unix socket (a socketpair's)."""
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(reader, writer)

    async def call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        if self.closed:
            raise ChannelClosed(op)
        self._next_id += 1
        answer = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = answer
        self._send((_CALL, self._next_id, op, args, kwargs))
        return await answer

    def note(self, op: str, *args: Any) -> None:
        if not self.closed:
            self._send((_NOTE, 0, op, args, {}))

    def send_first(self, value: Any) -> None:
        """The one message before any other (what the worker process is to be), read by `first`."""
        self._send(value)

    async def first(self) -> Any:
        return pickle.loads(await self._frame())

    async def serve(self, handlers: dict[str, Handler], *, concurrent: Collection[str] = ()) -> None:
        """Answer the other side's calls and notes until it is gone; then fail every pending call."""
        try:
            while True:
                try:
                    kind, ident, op, args, kwargs = pickle.loads(await self._frame())
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if kind in (_ANSWER, _FAILURE):
                    self._settle(ident, kind, args)
                elif op in concurrent:
                    task = asyncio.get_running_loop().create_task(self._answer(handlers[op], kind, ident, args, kwargs))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
                else:
                    await self._answer(handlers[op], kind, ident, args, kwargs)
        finally:
            self._close()

    async def _answer(self, handler: Handler, kind: int, ident: int, args: Any, kwargs: Any) -> None:
        try:
            result = handler(*args, **kwargs)
            if isinstance(result, Awaitable):
                result = await result
        except Exception as failure:  # the caller gets it, as if it had called the handler itself
            if kind == _CALL:
                self._send((_FAILURE, ident, "", _picklable(failure), {}))
            else:
                log.exception("note %r failed", getattr(handler, "__name__", handler))
            return
        if kind == _CALL:
            self._send((_ANSWER, ident, "", result, {}))

    def _settle(self, ident: int, kind: int, value: Any) -> None:
        answer = self._pending.pop(ident, None)
        if answer is None or answer.done():
            return
        if kind == _FAILURE:
            answer.set_exception(value)
        else:
            answer.set_result(value)

    def _send(self, message: Any) -> None:
        if self.closed:
            return
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self._writer.write(_HEADER.pack(len(data)) + data)

    async def _frame(self) -> bytes:
        (length,) = _HEADER.unpack(await self._reader.readexactly(_HEADER.size))
        return await self._reader.readexactly(length)

    def _close(self) -> None:
        self.closed = True
        for task in self._running:
            task.cancel()
        for ident, answer in self._pending.items():
            if not answer.done():
                answer.set_exception(ChannelClosed(f"call {ident}: the other process is gone"))
        self._pending.clear()
        with contextlib.suppress(Exception):
            self._writer.close()


def _picklable(failure: Exception) -> Exception:
    try:
        pickle.dumps(failure)
    except Exception:
        return RuntimeError(f"{type(failure).__name__}: {failure}")
    return failure
