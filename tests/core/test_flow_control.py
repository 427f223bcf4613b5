"""A stalled subscriber never delays the task or the other subscribers, and loses nothing."""

from __future__ import annotations

import socket

import httpx
import websockets

from latentcast import AsyncClient
from tests.support import collect, decode_frame, previewed_steps, seqs, subscribe


async def test_stalled_subscriber_delays_nobody_and_can_resume(start_server):
    server = start_server("--preview-min-interval", "0", "--subscriber-queue", "16", "--send-timeout", "2")
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        task = (
            await client.post(
                "/v1/tasks",
                json={"prompt": "p", "width": 512, "height": 512, "num_inference_steps": 60, "preview_format": "jpeg"},
            )
        ).json()
        # A frozen browser tab: a tiny receive window, and a client that stops reading after one
        # frame (max_queue=1) and sends no pings that could time it out.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        stalled = await websockets.connect(server.ws_url, sock=sock, max_queue=1, max_size=None, ping_interval=None)
        await subscribe(stalled, task["id"], task["token"], previews="binary")

        healthy = await collect(server.ws_url, task["id"], task["token"], previews="binary")
        assert seqs(healthy) == list(range(1, len(healthy) + 1))
        assert healthy[-1]["type"] == "task_postprocess_end"
        assert all("_image" in e for e in previewed_steps(healthy, 60))

        # Now the stalled client reads what reached it: a gapless prefix of the same events (some
        # older previews may have lost their image), ending either with the terminal event or with
        # the server closing it as too slow (1013).
        received = []
        try:
            async for frame in stalled:
                event = decode_frame(frame)
                if "seq" in event:
                    received.append(event)
                    if event["type"] == "task_postprocess_end":
                        break
        except websockets.ConnectionClosed:
            # The server gave up on it: 1013, its queue overflowed; 1011, it did not answer the
            # keepalive pings; 1006, the server's close frame could not get through the full
            # receive window, so the connection just ended (a slow machine reaches the ping
            # timeout before the overflow).
            assert stalled.close_code in (1013, 1011, 1006)
        await stalled.close()
        assert seqs(received) == list(range(1, len(received) + 1))
        for got, sent in zip(received, healthy):
            assert (got["type"], got["seq"]) == (sent["type"], sent["seq"])

        # Whatever it missed, it gets by resuming with since, as our client does (it also reconnects
        # by itself should the resumed socket drop on a loaded machine).
        got = seqs(received)
        if received[-1]["type"] != "task_postprocess_end":
            async with AsyncClient(server.base_url) as latentcast:
                resumed = latentcast.task(task["id"], task["token"]).events(previews="none", since=len(received))
                got += [event.seq async for event in resumed]
        assert got == seqs(healthy)
