"""`AsyncClient` and `Task` against the real server on a loopback port."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PIL import Image

from latentcast.client import (
    AsyncClient,
    CancelEvent,
    ConflictError,
    NotFoundError,
    OutputEvent,
    PermissionDeniedError,
    PostprocessEndEvent,
    ProgressEvent,
    QueueEvent,
    StartEvent,
    TaskCancelledError,
    ValidationError,
)
from tests.client.helpers import ENDLESS, LONG
from tests.support import SMALL, ServerProcess, collect

LIFECYCLE = [
    "task_queue", "task_accept", "task_preprocess_start", "task_preprocess_end", "task_assign", "task_start",
]
ENDING = ["task_output", "task_output_full", "task_end", "task_postprocess_start", "task_postprocess_end"]


def _without_queue_moves(types: list[str]) -> list[str]:
    """Types with repeated task_queue events (position changes) folded into one."""
    return [t for i, t in enumerate(types) if not (t == "task_queue" and i > 0 and types[i - 1] == "task_queue")]


async def test_submit_and_iterate_every_event_with_binary_previews(api: AsyncClient, tmp_path: Path) -> None:
    task = await api.submit("a lighthouse at dusk", seed=7, **SMALL)
    assert task.id and task.token and task.info is not None
    assert task.info.status == "queued" and task.info.seed == 7 and task.info.params["width"] == 64
    events = [event async for event in task.events()]

    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(e.task_id == task.id for e in events)
    steps = SMALL["num_inference_steps"]
    assert _without_queue_moves([e.type for e in events]) == (
        LIFECYCLE + ["task_output"] + ["task_progress", "task_output"] * steps + ENDING
    )
    assert isinstance(events[0], QueueEvent) and events[0].position is not None
    start = next(e for e in events if isinstance(e, StartEvent))
    assert (start.steps, start.seed, start.width, start.height, start.images) == (steps, 7, 64, 64, 1)
    progress = [e for e in events if isinstance(e, ProgressEvent)]
    assert [p.step for p in progress] == list(range(1, steps + 1))
    assert all(p.steps == steps and p.it_per_s is not None for p in progress)
    # the server's --preview-min-interval is 0: steps have previews, as image bytes (flow control may
    # leave an older image out when a newer one is queued behind it; the last step always has one)
    assert progress[-1].preview is not None
    for p in progress:
        if p.preview is not None:
            image = p.preview.image()
            assert p.preview.format in ("webp", "jpeg") and image.format == p.preview.format.upper()
            assert image.size == (p.preview.width, p.preview.height) == (8, 8)  # latent size
            assert p.preview.image(enlarged=True).size == (p.preview.image_width, p.preview.image_height) == (64, 64)
    assert [e.text for e in events if isinstance(e, OutputEvent)][1] == "Step 1/4"
    last = events[-1]
    assert isinstance(last, PostprocessEndEvent) and last.terminal and task.last_seq == last.seq

    outputs = await task.result()
    assert outputs == last.outputs and [o.name for o in outputs] == ["0.png"]
    assert (outputs[0].width, outputs[0].height, outputs[0].seed) == (64, 64, 7)
    paths = await task.download(tmp_path / "out")
    assert paths == [tmp_path / "out" / f"{task.id}-0.png"]
    with Image.open(paths[0]) as image:
        assert image.format == "PNG" and image.size == (64, 64)
    assert paths[0].stat().st_size == outputs[0].size

    info = await api.get(task.id)
    assert info.status == "completed" and info.done and info.last_seq == last.seq and info.token is None
    assert info.outputs == outputs


async def test_previews_json_and_none(api: AsyncClient) -> None:
    task = await api.submit("a red apple", **SMALL)
    with_json = [e async for e in task.events(previews="json") if isinstance(e, ProgressEvent)]
    # after the end, only the newest preview keeps its image in the replay
    newest = with_json[-1].preview
    assert newest is not None and newest.image().size == (8, 8) and newest.image(enlarged=True).size == (64, 64)
    without = [e async for e in task.events(previews="none") if isinstance(e, ProgressEvent)]
    assert [p.step for p in without] == [p.step for p in with_json] and all(p.preview is None for p in without)
    later = [e async for e in task.events(previews="none", since=10)]
    assert later[0].seq == 11 and later[-1].terminal
    with pytest.raises(ValueError, match="previews"):
        await anext(task.events(previews="base64"))  # type: ignore[arg-type]


async def test_refused_submit_is_a_validation_error_with_the_servers_fields(api: AsyncClient) -> None:
    with pytest.raises(ValidationError) as refused:
        await api.submit("a cat", width=65, height=64, extra_body={"bogus": 1})
    error = refused.value
    assert error.status_code == 422 and error.type == "validation_error"
    assert sorted(error.field_names) == ["bogus", "width"]
    assert {(f.field, f.rule) for f in error.fields} == {("width", "multiple_of"), ("bogus", "unknown_field")}
    assert "multiple of" in error.message and "unknown field" in error.message
    with pytest.raises(ValidationError) as blank:
        await api.submit("   ", **SMALL)
    assert blank.value.fields[0].rule == "not_blank"
    with pytest.raises(ValidationError) as model:
        await api.submit("a cat", model="no-such-model", **SMALL)
    assert model.value.status_code == 400 and model.value.field_names == ["model"]


async def test_not_found_and_wrong_token(api: AsyncClient) -> None:
    with pytest.raises(NotFoundError, match="no task 'nope'"):
        await api.get("nope")
    with pytest.raises(NotFoundError, match="no task 'nope'"):
        await anext(api.task("nope", "token").events())
    task = await api.submit("a green pear", **SMALL)
    with pytest.raises(PermissionDeniedError, match="does not match"):
        await api.get(task.id, token="wrong")
    stranger = api.task(task.id, "wrong")
    with pytest.raises(PermissionDeniedError, match="does not match"):
        await anext(stranger.events())
    with pytest.raises(PermissionDeniedError):
        await stranger.cancel()
    await task.result()


async def test_follow_someone_elses_task_with_only_its_token(api: AsyncClient, server: ServerProcess) -> None:
    task = await api.submit("a blue boat", **SMALL)
    async with AsyncClient(server.base_url) as other:
        found = await other.task_by_token(task.token)  # type: ignore[arg-type]
        assert found.id == task.id
        follower = other.task(task.id, task.token)
        events = [e async for e in follower.events()]
        assert events[-1].terminal and [e.seq for e in events] == list(range(1, len(events) + 1))
        outputs = await follower.result()
        assert (await follower.read_output(outputs[0]))[:8] == b"\x89PNG\r\n\x1a\n"
        with pytest.raises(NotFoundError):
            await other.task_by_token("not-a-token")


async def test_cancel_a_running_task(api: AsyncClient) -> None:
    task = await api.submit("a long walk", **ENDLESS)
    seen = []
    async for event in task.events(previews="none"):
        seen.append(event)
        if isinstance(event, ProgressEvent) and event.step == 1:
            info = await task.cancel()
            assert info.id == task.id
    assert isinstance(seen[-1], CancelEvent) and seen[-1].reason
    assert [e.type for e in seen[-3:]] == ["task_output", "task_output_full", "task_cancel"]
    assert max(e.step for e in seen if isinstance(e, ProgressEvent)) < ENDLESS["num_inference_steps"]
    with pytest.raises(TaskCancelledError) as cancelled:
        await task.result()
    assert cancelled.value.task_id == task.id and cancelled.value.reason == seen[-1].reason
    with pytest.raises(ConflictError):
        await task.cancel()
    assert (await task.get()).status == "cancelled"


async def test_cancel_a_queued_task_and_see_its_queue_position(api: AsyncClient) -> None:
    running = await api.submit("first in line", **ENDLESS)
    queued = await api.submit("second in line", **LONG)
    first = await anext(queued.events(previews="none"))
    assert isinstance(first, QueueEvent) and first.position is not None and first.position >= 1
    await queued.cancel()
    events = [e async for e in queued.events(previews="none")]
    assert isinstance(events[-1], CancelEvent)
    assert {e.type for e in events} <= {"task_queue", "task_cancel", "task_accept", "task_preprocess_start",
                                           "task_preprocess_end", "task_assign", "task_start", "task_output",
                                           "task_progress", "task_output_full"}
    await running.cancel()
    with pytest.raises(TaskCancelledError):
        await running.result()


async def test_result_without_events_and_list(api: AsyncClient) -> None:
    earlier = await api.submit("an earlier lake", **SMALL)
    await earlier.result()
    task = await api.submit("a quiet lake", num_images=2, output_format="jpeg", **SMALL)
    outputs = await task.result()  # waits, without the caller iterating events
    assert [o.name for o in outputs] == ["0.jpg", "1.jpg"]
    assert all(o.contenttype == "image/jpeg" for o in outputs)
    assert (await task.read_output(outputs[1]))[:3] == b"\xff\xd8\xff"
    page = await api.list(limit=1)
    assert len(page) == 1 and page.has_more
    assert page.data[0].id == task.id  # newest first
    second = await api.list(limit=1, cursor=page.next_cursor)
    assert second.data[0].id == earlier.id
    completed = await api.list(status="completed", limit=5)
    assert all(t.status == "completed" for t in completed)
    ids = []
    async for info in api.iter_tasks(status="completed", page_size=2):
        ids.append(info.id)
        if len(ids) == 5:
            break
    assert task.id in ids and len(set(ids)) == len(ids)
    with pytest.raises(ValidationError) as bad:
        await api.list(status="sleeping")
    assert bad.value.field_names == ["status"]
    assert any(m.get("id") for m in await api.models())


async def test_replay_matches_what_a_raw_subscriber_gets(api: AsyncClient, server: ServerProcess) -> None:
    task = await api.submit("a small fox", **SMALL)
    ours = [e async for e in task.events(previews="none")]
    raw = await collect(server.ws_url, task.id, task.token, previews="none")
    assert [(e.seq, e.type, e.message) for e in ours] == [(e["seq"], e["type"], e["message"]) for e in raw]
    assert all(e.time == r["time"] for e, r in zip(ours, raw, strict=True))


async def test_several_streams_at_once(api: AsyncClient) -> None:
    tasks = [await api.submit(f"tile {i}", **SMALL) for i in range(3)]

    async def ends(task):  # type: ignore[no-untyped-def]
        return [e async for e in task.events()][-1]

    finals = await asyncio.gather(*(ends(t) for t in tasks))
    assert all(isinstance(f, PostprocessEndEvent) for f in finals)
