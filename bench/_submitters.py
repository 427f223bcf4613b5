"""A client process of the submission benchmark: `POST /v1/tasks` as fast as keep-alive HTTP/1.1 allows.

    python -m bench._submitters --port P --count N --connections C [--body JSON]

A minimal client on asyncio streams (an HTTP library would cost more CPU than the server it
measures). Opens C keep-alive connections, prints `READY`, waits for a line on stdin, then sends N
requests spread over the connections, each connection one request at a time, and prints
`DONE {json}`: the statuses, the wall-clock start and end, and each request's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import orjson

BODY = '{"prompt": "a lighthouse at dusk", "width": 256, "height": 256, "num_inference_steps": 20}'


async def connection(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port)


async def worker(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, body: bytes, count: int,
    statuses: dict[int, int], latencies: list[float],
) -> None:
    request = (
        f"POST /v1/tasks HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    for _ in range(count):
        began = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - began)
        statuses[status] = statuses.get(status, 0) + 1


async def main() -> None:
    parse = argparse.ArgumentParser()
    parse.add_argument("--host", default="127.0.0.1")
    parse.add_argument("--port", type=int, required=True)
    parse.add_argument("--count", type=int, required=True)
    parse.add_argument("--connections", type=int, default=8)
    parse.add_argument("--body", default=BODY, help="the task asked for, as JSON")
    args = parse.parse_args()
    streams = [await connection(args.host, args.port) for _ in range(args.connections)]
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    shares = [args.count // args.connections + (1 if i < args.count % args.connections else 0) for i in range(args.connections)]
    began = time.time()
    await asyncio.gather(*(worker(r, w, args.host, args.body.encode(), n, statuses, latencies) for (r, w), n in zip(streams, shares)))
    ended = time.time()
    for _, writer in streams:
        writer.close()
    print("DONE " + orjson.dumps({"statuses": statuses, "began": began, "ended": ended,
                                  "latencies": [round(x, 6) for x in latencies]}, option=orjson.OPT_NON_STR_KEYS).decode(),
          flush=True)


if __name__ == "__main__":
    asyncio.run(main())
