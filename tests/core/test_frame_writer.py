"""Live events written straight to idle sockets arrive whole, in order, in each socket's own mode;
the writer is built against the installed uvicorn, and where it cannot be, every frame goes through
ASGI and arrives the same."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tomllib
from collections.abc import AsyncIterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from packaging.requirements import Requirement
from prometheus_client import REGISTRY
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode

from harness.processes import free_port
from latentcast.server.api.frame_writer import EXTENSION, frame_writing_protocol, serving_protocol
from latentcast.server.app import create_app
from latentcast.server.config import Settings
from tests.observability.test_metrics import moved, scrape, settle, value
from tests.support import decode_frame, eventually, is_terminal, previewed_steps, seqs, subscribe

STEPS = 6


async def test_live_events_reach_every_mode_whole_and_are_each_counted_once(start_server):
    server = start_server("--preview-min-interval", "0")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        # A long task holds the one worker while three sockets subscribe to the next one, so every
        # event of it is live (none replayed from the store).
        blocker = (await client.post("/v1/tasks", json={"prompt": "blocker", "width": 512, "height": 512, "num_inference_steps": 100})).json()
        task = (await client.post("/v1/tasks", json={"prompt": "a red circle", "width": 128, "height": 128, "num_inference_steps": STEPS, "preview_format": "jpeg"})).json()
        before = await scrape(client)
        modes = ("binary", "json", "none")
        sockets = [await websockets.connect(server.ws_url, max_size=None) for _ in modes]
        for ws, mode in zip(sockets, modes):
            await subscribe(ws, task["id"], task["token"], previews=mode)
            assert decode_frame(await ws.recv())["type"] == "subscribed"
            queued = decode_frame(await ws.recv())  # the stored log so far: its task_queue
            assert (queued["type"], queued["seq"]) == ("task_queue", 1)
        assert (await client.post(f"/v1/tasks/{blocker['id']}/cancel")).status_code == 202

        received: dict[str, list[dict]] = {}
        for ws, mode in zip(sockets, modes):
            events = [queued]
            while not is_terminal(events[-1]):
                frame = await asyncio.wait_for(ws.recv(), 120)
                event = decode_frame(frame)
                assert isinstance(frame, bytes) == ("_image" in event)  # binary frames carry an image
                events.append(event)
            await ws.close()
            received[mode] = events

        after = await settle(client, lambda s: value(s, "latentcast_subscribers", transport="websocket") == 0)

    binary, as_json, bare = received["binary"], received["json"], received["none"]
    assert seqs(binary) == seqs(as_json) == seqs(bare) == list(range(1, len(binary) + 1))
    assert binary[-1]["type"] == "task_postprocess_end"
    assert [e["type"] for e in binary] == [e["type"] for e in as_json] == [e["type"] for e in bare]
    # every step's preview, in each mode's own form: the image bytes beside the envelope, base64
    # inside it, or nothing
    images = [e["_image"] for e in previewed_steps(binary, STEPS)]
    assert len(images) == STEPS and all(image.startswith(b"\xff\xd8") for image in images)
    embedded = [e["message"]["preview"]["data"] for e in previewed_steps(as_json, STEPS)]
    assert len(embedded) == STEPS
    assert not any("preview" in e["message"] for e in bare if e["type"] == "task_progress")

    # each socket's messages counted once: its `subscribed`, its events; and most of the live
    # ones went past the sender task (the sockets read as fast as the steps come)
    sent = moved(before, after, "latentcast_events_sent_total", transport="websocket")
    assert sent == sum(len(events) + 1 for events in received.values())
    written_at_once = moved(before, after, "latentcast_ws_events_written_at_once_total")
    assert 1 <= written_at_once <= sent - 2 * len(modes)  # never the replies nor the replayed task_queue


def test_the_writer_is_built_for_the_installed_uvicorn_which_pyproject_pins() -> None:
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    server = pyproject["project"]["optional-dependencies"]["server"]
    (pin,) = [Requirement(r) for r in server if r.startswith("uvicorn")]
    assert version("uvicorn") in pin.specifier
    protocol = serving_protocol()
    assert isinstance(protocol, type) and issubclass(protocol, WebSocketsSansIOProtocol)
    assert callable(getattr(protocol, "write_frame", None))


class _Renamed(WebSocketsSansIOProtocol):
    """uvicorn's protocol as a release that renamed what the writer reads would make it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.writable


def test_a_uvicorn_without_what_the_writer_reads_gets_no_writer(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="latentcast.api"):
        assert frame_writing_protocol(_Renamed) is None
    assert "_Renamed of uvicorn" in caplog.text and "lacks writable: frames go through ASGI" in caplog.text


@contextlib.asynccontextmanager
async def _serving(app: Any, ws: Any) -> AsyncIterator[int]:
    """`app` served by uvicorn on a loopback port, in this event loop, with the socket protocol `ws`."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws=ws, ws_per_message_deflate=False, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()  # it failed to start: say why
        return server.started

    try:
        await eventually(started, "uvicorn started")
        yield port
    finally:
        server.should_exit = True
        await task


async def test_frames_written_past_asgi_arrive_whole_and_in_order_with_those_sent_through_it() -> None:
    """The writer on the installed uvicorn, without the service: frames written straight to the
    transport around one sent through ASGI, as a socket's live events and replies interleave; the
    frames written in one callback (a step's two events) leave together after what came before."""
    writers: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        writer = scope["extensions"][EXTENSION]
        writers.append(writer)
        assert writer.can_write_now()
        writer.write_frame(Frame(Opcode.TEXT, b'{"seq": 1}').serialize(mask=False))
        await send({"type": "websocket.send", "text": '{"seq": 2}'})
        writer.write_frame(Frame(Opcode.BINARY, b"\x00\x01" * 40_000).serialize(mask=False))
        writer.write_frame(Frame(Opcode.TEXT, b'{"seq": 4}').serialize(mask=False))
        assert (await receive())["type"] == "websocket.disconnect"

    async with _serving(app, serving_protocol()) as port:
        async with websockets.connect(f"ws://127.0.0.1:{port}/", max_size=None) as ws:
            assert [await ws.recv() for _ in range(4)] == ['{"seq": 1}', '{"seq": 2}', b"\x00\x01" * 40_000, '{"seq": 4}']
        await eventually(lambda: _true(not writers[0].can_write_now()), "the closed socket refusing frames")


async def _true(value: bool) -> bool:
    return value


def _written_at_once() -> float:
    return REGISTRY.get_sample_value("latentcast_ws_events_written_at_once_total") or 0.0


@pytest.mark.parametrize("writer", [True, False], ids=["frame-writer", "uvicorn-own"])
async def test_a_socket_gets_the_same_events_with_the_writer_or_without(tmp_path: Path, writer: bool) -> None:
    """The service in this process (no worker: its task stays queued until cancelled), under the
    protocol `latentcast serve` runs, and under uvicorn's own, what it falls back to where the
    writer cannot be built: the same events either way, live ones past ASGI only with the writer."""
    settings = Settings(data_dir=tmp_path, workers=0)
    ws_protocol = serving_protocol() if writer else "websockets-sansio"
    async with _serving(create_app(settings), ws_protocol) as port:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            task = (await client.post("/v1/tasks", json={"prompt": "a", "width": 64, "height": 64})).json()
            async with websockets.connect(f"ws://127.0.0.1:{port}/v1/ws") as ws:
                await subscribe(ws, task["id"], task["token"], previews="binary")
                assert decode_frame(await ws.recv())["type"] == "subscribed"
                assert decode_frame(await ws.recv())["type"] == "task_queue"  # replayed: through ASGI
                before = _written_at_once()
                assert (await client.post(f"/v1/tasks/{task['id']}/cancel")).status_code == 202
                events = [decode_frame(await asyncio.wait_for(ws.recv(), 60))]
                while not is_terminal(events[-1]):  # (a live task_queue may come first: positions are announced)
                    events.append(decode_frame(await asyncio.wait_for(ws.recv(), 60)))
                after = _written_at_once()
    assert events[-1]["type"] == "task_cancel" and [e["seq"] for e in events] == list(range(2, 2 + len(events)))
    assert (after - before >= len(events)) if writer else (after == before)
