"""The channel between the API process and a worker process, on its own: two real channels over a
real socketpair. Whatever one side sends, the other side's `serve` answers it or says why not, and
ends only when its peer is gone; then every call still waiting fails with `ChannelClosed`."""

from __future__ import annotations

import asyncio
import logging
import pickle
import socket
import struct
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from typing import Protocol

import pytest

from latentcast.server.protocol.events import EncodedPreview, RecordedEvent
from latentcast.server.tasks.ports import NewEvent, StaleWrite, StoreUnavailable
from latentcast.server.worker_process.channel import (
    Channel,
    ChannelClosed,
    RemoteFailure,
    UnknownOperation,
    operations,
)
from latentcast.server.worker_process.messages import ToApiProcess, ToWorkerProcess

HEADER = struct.Struct(">IBQ")  # a frame's body length, kind and call id (channel.py)
CALL, ANSWER = 1, 3


class Counter(Protocol):
    """What the serving side offers in these tests."""

    async def add(self, amount: int) -> int: ...

    async def wait(self) -> str: ...

    async def fail(self, how: str) -> None: ...

    def remember(self, value: str) -> None: ...

    async def missing(self) -> None: ...


class Nothing(Protocol):
    """What the calling side offers: nothing, it only calls (its `serve` reads the answers)."""


class Unpicklable(Exception):
    """An exception holding something pickle refuses (a lock)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


class WantsARecord(Exception):
    """Pickles, but does not unpickle: its `__init__` wants what its `args` are not (as
    tasks.service.TaskNotFinished does)."""

    def __init__(self, record: dict[str, str]) -> None:
        super().__init__(f"task {record['id']} is running")


class CountingTarget:
    """A `Counter` (without `missing`, which its Protocol names) and one method it does not name."""

    def __init__(self) -> None:
        self.total = 0
        self.remembered: list[str] = []
        self.release = asyncio.Event()
        self.waits_cancelled = 0

    async def add(self, amount: int) -> int:
        self.total += amount
        return self.total

    async def wait(self) -> str:
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.waits_cancelled += 1
            raise
        return "released"

    async def fail(self, how: str) -> object:
        if how == "plainly":
            raise StaleWrite("task t1 belongs to another worker")
        if how == "unpicklably":
            raise Unpicklable("holds a lock")
        if how == "unreadably":
            raise WantsARecord({"id": "t1"})
        if how == "with an unpicklable answer":
            return threading.Lock()
        raise AssertionError(how)

    def remember(self, value: str) -> None:
        self.remembered.append(value)

    def secret(self) -> str:
        return "not an operation of Counter"


@dataclass
class Pair:
    caller: Channel
    callee: Channel
    target: CountingTarget
    calling: asyncio.Task[None]  # the caller's serve: reads the answers
    serving: asyncio.Task[None]  # the callee's serve


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    ours, theirs = socket.socketpair()
    caller, callee = await Channel.over(ours), await Channel.over(theirs)
    target = CountingTarget()
    loop = asyncio.get_running_loop()
    calling = loop.create_task(caller.serve(object(), Nothing))
    serving = loop.create_task(callee.serve(target, Counter, concurrent={Counter.wait}))
    yield Pair(caller, callee, target, calling, serving)
    caller.close()
    callee.close()
    await asyncio.wait_for(asyncio.gather(calling, serving), 10)


async def test_a_call_gets_its_answer_and_a_note_is_obeyed_in_order(pair: Pair) -> None:
    pair.caller.note(Counter.remember, "first")
    assert await pair.caller.call(Counter.add, 2) == 2
    pair.caller.note(Counter.remember, "second")
    assert await asyncio.gather(*(pair.caller.call(Counter.add, 1) for _ in range(3))) == [3, 4, 5]
    assert pair.target.remembered == ["first", "second"]


async def test_a_call_that_waits_long_holds_up_no_other(pair: Pair) -> None:
    waiting = asyncio.ensure_future(pair.caller.call(Counter.wait))
    assert await pair.caller.call(Counter.add, 7) == 7  # answered while `wait` still waits
    assert not waiting.done()
    pair.target.release.set()
    assert await waiting == "released"


async def test_an_unknown_op_is_answered_as_an_error_and_the_channel_serves_on(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    # Named by another Protocol, named by none, and named by Counter but missing from its target.
    with pytest.raises(UnknownOperation, match="Counter has no operation 'next_job'"):
        await pair.caller.call(ToApiProcess.next_job, "worker-1")
    with pytest.raises(UnknownOperation, match="Counter has no operation 'secret'"):
        await pair.caller.call(CountingTarget.secret)  # type: ignore[arg-type]  # the target has it; Counter does not name it
    with pytest.raises(UnknownOperation, match="Counter has no operation 'missing'"):
        await pair.caller.call(Counter.missing)
    with caplog.at_level(logging.ERROR, logger="latentcast.channel"):
        pair.caller.note(ToWorkerProcess.shutdown)
        assert await pair.caller.call(Counter.add, 1) == 1  # answered after the note: the note was read
    assert "Counter has no operation 'shutdown'" in caplog.text
    assert not pair.serving.done()


async def test_a_failure_crosses_as_itself_when_it_can_and_as_a_remote_failure_when_it_cannot(pair: Pair) -> None:
    with pytest.raises(StaleWrite, match="task t1 belongs to another worker"):
        await pair.caller.call(Counter.fail, "plainly")
    with pytest.raises(RemoteFailure, match="Unpicklable: holds a lock"):
        await pair.caller.call(Counter.fail, "unpicklably")
    with pytest.raises(RemoteFailure, match="WantsARecord: task t1 is running"):
        await pair.caller.call(Counter.fail, "unreadably")
    with pytest.raises(RemoteFailure, match="fail answered what cannot be pickled"):
        await pair.caller.call(Counter.fail, "with an unpicklable answer")
    assert await pair.caller.call(Counter.add, 1) == 1
    assert not pair.serving.done()


async def test_a_request_that_cannot_be_pickled_fails_at_the_caller_and_leaves_the_channel_as_it_was(
    pair: Pair,
) -> None:
    with pytest.raises(TypeError):
        await pair.caller.call(Counter.add, threading.Lock())  # type: ignore[arg-type]
    assert await pair.caller.call(Counter.add, 1) == 1


async def test_when_the_peer_closes_waiting_calls_fail_and_its_running_calls_end(pair: Pair) -> None:
    waiting = asyncio.ensure_future(pair.caller.call(Counter.wait))
    assert await pair.caller.call(Counter.add, 1) == 1  # `wait` has arrived and runs
    pair.callee.close()
    with pytest.raises(ChannelClosed) as closed:
        await waiting
    assert isinstance(closed.value, StoreUnavailable)  # to a worker, an outage: it waits, never crashes
    await asyncio.wait_for(asyncio.gather(pair.calling, pair.serving), 10)  # both ends' serve returned
    assert pair.target.waits_cancelled == 1  # nothing the callee's serve started still runs
    with pytest.raises(ChannelClosed):
        await pair.caller.call(Counter.add, 1)  # and a call made after fails at once


async def test_a_peer_that_dies_mid_frame_ends_serve_quietly_and_fails_the_waiting_calls() -> None:
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    channel = await Channel.over(ours)
    serving = asyncio.get_running_loop().create_task(channel.serve(object(), Nothing))
    waiting = asyncio.ensure_future(channel.call(Counter.add, 1))
    _, kind, ident = HEADER.unpack(await asyncio.wait_for(asyncio.get_running_loop().sock_recv(peer, HEADER.size), 10))
    assert (kind, ident) == (CALL, 1)  # the call is out, waiting for its answer
    body = pickle.dumps("an answer long enough to be cut in two")
    frame = HEADER.pack(len(body), ANSWER, ident) + body
    with peer:
        await asyncio.get_running_loop().sock_sendall(peer, frame[: HEADER.size + len(body) // 2])  # half its body
    await asyncio.wait_for(serving, 10)  # returned, without an exception
    with pytest.raises(ChannelClosed):
        await waiting


def test_the_messages_name_their_operations() -> None:
    assert operations(ToWorkerProcess) == {"start", "cancel", "shutdown"}
    assert operations(ToApiProcess) == {
        "next_job", "get", "emit", "emit_many", "keepalive", "cancel_requested", "requeue", "job_done",
        "ready", "heartbeat", "preview_time", "input",
    }


def test_what_crosses_the_channel_pickles_whole() -> None:
    """Events and previews pickle by their own `__reduce__` (the fast path): each field survives."""
    preview = EncodedPreview("jpeg", 32, 32, 256, 256, b"\xff\xd8")
    new = NewEvent("task_progress", {"step": 3}, 1.5, preview, "owner:1:7")
    recorded = RecordedEvent("t1", 4, "task_progress", 1.5, {"step": 3}, preview)
    for value in (preview, new, recorded):
        back = pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        assert back == value
        assert [getattr(back, f.name) for f in fields(value) if f.init] == [getattr(value, f.name) for f in fields(value) if f.init]
