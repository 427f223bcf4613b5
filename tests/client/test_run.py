"""`run()`: one call that submits, waits and returns the images with their bytes, with an optional
callback for every event; async and sync, against the real server."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from latentcast import (
    AsyncClient,
    Client,
    Event,
    GeneratedImage,
    ProgressEvent,
    TaskCancelledError,
    ValidationError,
)
from tests.support import ServerProcess

SMALL = {"width": 64, "height": 80, "num_inference_steps": 3}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_images(images: list[GeneratedImage], prompt: str, count: int) -> None:
    assert [image.output.name for image in images] == [f"{index}.png" for index in range(count)]
    for image in images:
        assert image.data.startswith(PNG_SIGNATURE) and len(image.data) == image.output.size
        assert image.image().size == (64, 80)
        assert image.info is not None and image.info.prompt == prompt


def _check_stream(events: list[Event], steps: int) -> None:
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert events[0].type == "task_queue" and events[-1].type == "task_postprocess_end"
    progress = [event for event in events if isinstance(event, ProgressEvent)]
    assert [event.step for event in progress] == list(range(1, steps + 1))
    assert progress[-1].preview is not None  # previews come with the events


async def test_async_run_returns_the_images_and_reports_every_event(server: ServerProcess, tmp_path: Path) -> None:
    seen: list[Event] = []

    async def on_event(event: Event) -> None:  # a coroutine function is awaited
        seen.append(event)

    async with AsyncClient(server.base_url, timeout=60) as client:
        images = await client.run("one call", num_images=2, seed=5, on_event=on_event, **SMALL)
        quiet = await client.run("one call, no callback", **SMALL)
    _check_images(images, "one call", 2)
    _check_stream(seen, 3)
    assert {event.task_id for event in seen} == {images[0].task_id}
    assert images[0].output.seed == 5
    saved = images[0].save(tmp_path / "first.png")
    assert saved.read_bytes() == images[0].data  # the bytes as stored, parameters and all
    _check_images(quiet, "one call, no callback", 1)


def test_sync_run_calls_back_in_the_callers_thread(server: ServerProcess) -> None:
    seen: list[tuple[int, Event]] = []
    with Client(server.base_url, timeout=60) as client:
        images = client.run("sync call", on_event=lambda event: seen.append((threading.get_ident(), event)), **SMALL)
    _check_images(images, "sync call", 1)
    _check_stream([event for _, event in seen], 3)
    assert {thread for thread, _ in seen} == {threading.get_ident()}


async def test_run_raises_when_refused_or_cancelled(server: ServerProcess) -> None:
    async with AsyncClient(server.base_url, timeout=60) as client:
        with pytest.raises(ValidationError) as refused:
            await client.run("too wide", width=65, height=64)
        assert refused.value.field_names == ["width"]

        async def cancel_at_the_first_step(event: Event) -> None:
            if isinstance(event, ProgressEvent) and event.step == 1:
                await client.task(event.task_id).cancel()

        with pytest.raises(TaskCancelledError) as cancelled:
            await client.run("cancelled", on_event=cancel_at_the_first_step, width=64, height=64, num_inference_steps=50)
        assert cancelled.value.reason == "cancelled by request"
