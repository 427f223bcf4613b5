"""The latency benchmark's yardstick: a bare `websockets` server broadcasting recorded frames.

    python -m bench._broadcast --frames FRAMES --expect N

Listens on a free loopback port and prints `LISTENING <port>`. Each connection's first message
(a subscribe) is answered with a `subscribed` control message, as the service answers it. Once
`--expect` sockets have subscribed it prints `READY`; on a line from stdin it sends the recorded
frames (bench._subscribers --record: what one subscriber of the service received) to every socket
with `websockets.broadcast`, which frames each message once for all sockets and writes without
waiting, paced as the service sent them; on the next line it prints `DONE {json}` with the CPU
seconds this process spent from the first line to the second, and the frames it sent. That is the
least a Python server can spend to send the same frames to the same clients.
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import sys
import time

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve


async def main() -> None:
    parse = argparse.ArgumentParser()
    parse.add_argument("--frames", required=True)
    parse.add_argument("--expect", type=int, required=True)
    args = parse.parse_args()
    with open(args.frames, "rb") as file:
        frames: list[tuple[float, int, bytes]] = pickle.load(file)
    sockets: set[ServerConnection] = set()
    everyone = asyncio.Event()

    async def handler(connection: ServerConnection) -> None:
        subscribe = orjson.loads(await connection.recv())
        await connection.send(orjson.dumps({"type": "subscribed", "id": subscribe.get("id"), "since": 0}).decode())
        sockets.add(connection)
        if len(sockets) >= args.expect:
            everyone.set()
        await connection.wait_closed()

    loop = asyncio.get_running_loop()
    lines = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(lines), sys.stdin)
    async with serve(handler, "127.0.0.1", 0, max_size=None, compression=None, ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"LISTENING {port}", flush=True)
        await everyone.wait()
        print("READY", flush=True)
        await lines.readline()
        cpu_began = time.process_time()
        began, first = time.monotonic(), frames[0][0]
        for received, opcode, payload in frames:
            await asyncio.sleep(max(0.0, began + (received - first) - time.monotonic()))
            broadcast(sockets, payload if opcode == 0x2 else payload.decode())
        await lines.readline()
        done = {"cpu_seconds": time.process_time() - cpu_began, "frames": len(frames) * len(sockets)}
        print("DONE " + orjson.dumps(done).decode(), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
