"""A client process of the latency and connection benchmarks: many WebSocket subscribers in one loop.

    python -m bench._subscribers --url WS --task ID [--token=T] --count N [--previews binary] [--idle]
                                 [--record FRAMES]

Opens `count` sockets and subscribes each to the task; prints `READY <n>` once every socket got its
`subscribed` reply or was refused (n: the subscribed ones; a refused socket's `error` says why). Without `--idle` each socket then reads until the task's terminal event and
the process prints `DONE {json}`: per socket whether it saw seq 1..last without a gap, the
latencies (receipt time minus the event's `time`, same clock) of events that happened after the
socket subscribed, and the CPU seconds this process spent from READY to DONE. With `--idle` the
sockets stay open, reading nothing, until stdin closes. `--record` writes the first socket's
frames, as received and with their receipt times, for bench._broadcast to send again.

The client is a minimal RFC 6455 implementation on an asyncio Protocol (handshake, unmasked
server frames, masked client frames, ping/pong; no extensions): a frame is timed when its bytes
reach this process, and costs a few microseconds to parse, so what is measured is the server, not
a client library's per-message overhead (with a thousand sockets on two cores, that overhead, not
the server, would set the latency).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import pickle
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

from latentcast.wire import decode_frame, ends_stream


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked frame, as RFC 6455 requires from clients."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = bytes([0x80 | opcode, 0x80 | length])
    elif length < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class Subscriber(asyncio.Protocol):
    def __init__(self, host: str, path: str, task: str, token: str | None, previews: str) -> None:
        self.host, self.path, self.task, self.token, self.previews = host, path, task, token, previews
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.handshaken = False
        self.subscribed = asyncio.get_running_loop().create_future()
        self.finished = asyncio.get_running_loop().create_future()
        for future in (self.subscribed, self.finished):  # a failure is recorded in `error`, awaited or not
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.closing = False
        self.subscribed_at = 0.0
        self.seqs: list[int] = []
        self.types: list[str] = []
        self.latencies: list[tuple[str, float]] = []
        self.previews_received = 0
        self.error: str | None = None
        self.recorded: list[tuple[float, int, bytes]] | None = None  # (receipt time, opcode, payload)

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        received = time.time()
        self.buffer += data
        if not self.handshaken:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[:end]).split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" ":
                self._fail(f"handshake refused: {status!r}")
                return
            del self.buffer[: end + 4]
            self.handshaken = True
            message: dict[str, Any] = {"type": "subscribe", "id": self.task, "previews": self.previews}
            if self.token:
                message["token"] = self.token
            self.send(orjson.dumps(message))
        self._frames(received)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done() and not self.closing:
            self._fail(f"connection lost: {exc}")

    # -- frames -----------------------------------------------------------------------------------

    def send(self, payload: bytes, opcode: int = 0x1) -> None:
        assert self.transport is not None
        self.transport.write(_client_frame(opcode, payload))

    def _frames(self, received: float) -> None:
        buffer = self.buffer
        offset = 0
        while len(buffer) - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            length, head = second & 0x7F, 2
            if length == 126:
                if len(buffer) - offset < 4:
                    break
                length, head = int.from_bytes(buffer[offset + 2 : offset + 4], "big"), 4
            elif length == 127:
                if len(buffer) - offset < 10:
                    break
                length, head = int.from_bytes(buffer[offset + 2 : offset + 10], "big"), 10
            if len(buffer) - offset < head + length:
                break
            payload = bytes(buffer[offset + head : offset + head + length])
            offset += head + length
            self._frame(first & 0x0F, payload, received)
        if offset:
            del buffer[:offset]

    def _frame(self, opcode: int, payload: bytes, received: float) -> None:
        if opcode == 0x9:  # ping
            self.send(payload, 0xA)
            return
        if opcode == 0x8:  # close
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            self._fail(f"closed by the server ({code})")
            return
        if opcode not in (0x1, 0x2):
            return
        event, image = decode_frame(payload if opcode == 0x2 else payload.decode())
        self.previews_received += image is not None
        if "seq" not in event:
            if event.get("type") == "subscribed" and not self.subscribed.done():
                self.subscribed_at = time.time()
                self.subscribed.set_result(None)
            elif event.get("type") == "error":
                self._fail(f"refused: {event}")
            return
        if self.recorded is not None:
            self.recorded.append((received, opcode, payload))
        self.seqs.append(event["seq"])
        self.types.append(event["type"])
        if event["time"] >= self.subscribed_at > 0:
            self.latencies.append((event["type"], received - event["time"]))
        if ends_stream(event) and not self.finished.done():
            self.finished.set_result(None)

    def _fail(self, why: str) -> None:
        self.error = self.error or why
        for future in (self.subscribed, self.finished):
            if not future.done():
                future.set_exception(RuntimeError(why))

    def close(self) -> None:
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.send((1000).to_bytes(2, "big"), 0x8)
            self.transport.close()

    def summary(self) -> dict[str, Any]:
        gapless = bool(self.seqs) and self.seqs == list(range(1, len(self.seqs) + 1))
        return {
            "first": self.seqs[0] if self.seqs else None,
            "last": self.seqs[-1] if self.seqs else None,
            "gapless": gapless,
            "terminal": bool(self.types) and self.finished.done() and self.finished.exception() is None,
            "events": len(self.seqs),
            "previews": self.previews_received,
            "error": self.error,
        }


async def main() -> None:
    parse = argparse.ArgumentParser()
    parse.add_argument("--url", required=True)
    parse.add_argument("--task", required=True)
    parse.add_argument("--token", default=None)
    parse.add_argument("--count", type=int, required=True)
    parse.add_argument("--previews", default="binary")
    parse.add_argument("--idle", action="store_true")
    parse.add_argument("--batch", type=int, default=100, help="sockets connecting at once")
    parse.add_argument("--record", default=None, help="write the first socket's frames to this file")
    args = parse.parse_args()
    url = urlsplit(args.url)
    loop = asyncio.get_running_loop()
    subscribers: list[Subscriber] = []
    recording: list[tuple[float, int, bytes]] = []
    opened: list[Subscriber] = []

    async def one() -> Subscriber:
        _, subscriber = await loop.create_connection(
            lambda: Subscriber(url.netloc, url.path or "/", args.task, args.token, args.previews),
            url.hostname, url.port,
        )
        if args.record and not opened:
            subscriber.recorded = recording  # from its first event: it has not subscribed yet
        opened.append(subscriber)
        with contextlib.suppress(RuntimeError):  # refused: its `error` goes in the report with the rest
            await asyncio.wait_for(subscriber.subscribed, 120)
        return subscriber

    for start in range(0, args.count, args.batch):
        subscribers += await asyncio.gather(*(one() for _ in range(min(args.batch, args.count - start))))
    print(f"READY {sum(s.subscribed.done() and s.subscribed.exception() is None for s in subscribers)}", flush=True)
    cpu_began = time.process_time()
    if args.idle:
        await loop.run_in_executor(None, sys.stdin.read)
        for subscriber in subscribers:
            subscriber.close()
        print("DONE {}", flush=True)
        return
    await asyncio.gather(*(s.finished for s in subscribers), return_exceptions=True)
    cpu_seconds = time.process_time() - cpu_began
    for subscriber in subscribers:
        subscriber.close()
    if args.record:
        with open(args.record, "wb") as file:
            pickle.dump(recording, file)
    latencies: dict[str, list[float]] = {}
    for subscriber in subscribers:
        for type_, seconds in subscriber.latencies:
            latencies.setdefault(type_, []).append(round(seconds, 6))
    done = {"sockets": [s.summary() for s in subscribers], "latencies": latencies, "cpu_seconds": cpu_seconds}
    print("DONE " + orjson.dumps(done).decode(), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
