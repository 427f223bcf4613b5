"""The latency benchmark's yardstick: a bare `websockets` server broadcasting recorded frames.

    python -m bench._broadcast --frames FRAMES --expect N

Listens on a free loopback port and prints `LISTENING <port>`. Each connection's first message
(a subscribe) is answered with a `subscribed` control message, as the service answers it. Once
`--expect` sockets have subscribed it prints `READY`; on a line from stdin it sends the recorded
frames (bench._subscribers --record: what one subscriber of the service received) to every socket
with `websockets.broadcast`, which frames each message once for all sockets and writes without
waiting, paced as the service sent them; on the next line it prints `DONE {json}` with the CPU
seconds this process spent from the first line to the second (and from the moment it listened:
the handshakes and subscribes too), and the frames it sent. That is the
least a Python server can spend to send the same frames to the same clients.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import pickle
import sys
import time
from collections.abc import AsyncIterator

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve


class Subscribers:
    """The sockets of bench._subscribers clients, held as a bare `websockets` server holds them:
    each connection's first message (a subscribe) is answered `subscribed`, as the service answers it."""

    def __init__(self, expect: int) -> None:
        self.sockets: set[ServerConnection] = set()
        self.everyone = asyncio.Event()  # set once `expect` sockets have subscribed
        self.expect = expect

    async def handler(self, connection: ServerConnection) -> None:
        subscribe = orjson.loads(await connection.recv())
        await connection.send(orjson.dumps({"type": "subscribed", "id": subscribe.get("id"), "since": 0}).decode())
        self.sockets.add(connection)
        if len(self.sockets) >= self.expect:
            self.everyone.set()
        await connection.wait_closed()


@contextlib.asynccontextmanager
async def listening(subscribers: Subscribers) -> AsyncIterator[asyncio.StreamReader]:
    """A server for `subscribers` on a free loopback port, announced as `LISTENING <port>`; yields
    this process's stdin, whose lines are the benchmark's orders."""
    loop = asyncio.get_running_loop()
    lines = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(lines), sys.stdin)
    async with serve(
        subscribers.handler, "127.0.0.1", 0, max_size=None, compression=None, ping_interval=None
    ) as server:
        print(f"LISTENING {next(iter(server.sockets)).getsockname()[1]}", flush=True)
        yield lines


async def main() -> None:
    parse = argparse.ArgumentParser()
    parse.add_argument("--frames", required=True)
    parse.add_argument("--expect", type=int, required=True)
    args = parse.parse_args()
    with open(args.frames, "rb") as file:
        frames: list[tuple[float, int, bytes]] = pickle.load(file)
    subscribers = Subscribers(args.expect)
    async with listening(subscribers) as lines:
        cpu_listening = time.process_time()  # the handshakes and subscribes from here on
        await subscribers.everyone.wait()
        print("READY", flush=True)
        await lines.readline()
        cpu_began = time.process_time()
        began, first = time.monotonic(), frames[0][0]
        for received, opcode, payload in frames:
            await asyncio.sleep(max(0.0, began + (received - first) - time.monotonic()))
            broadcast(subscribers.sockets, payload if opcode == 0x2 else payload.decode())
        await lines.readline()
        done = {
            "cpu_seconds": time.process_time() - cpu_began,
            "cpu_seconds_with_handshakes": time.process_time() - cpu_listening,
            "frames": len(frames) * len(subscribers.sockets),
        }
        print("DONE " + orjson.dumps(done).decode(), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
