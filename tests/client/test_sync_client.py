"""`Client`: the same surface without `await`, on a private event loop thread."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from PIL import Image

from latentcast.client import (
    CancelEvent,
    Client,
    NotFoundError,
    PostprocessEndEvent,
    ProgressEvent,
    TaskCancelledError,
    ValidationError,
)
from tests.client.helpers import ENDLESS
from tests.support import SMALL, ServerProcess


def test_submit_follow_and_download(server: ServerProcess, tmp_path: Path) -> None:
    with Client(server.base_url) as client:
        task = client.submit("a paper crane", seed=3, **SMALL)
        events = list(task.events())
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert isinstance(events[-1], PostprocessEndEvent)
        previews = [e.preview for e in events if isinstance(e, ProgressEvent) and e.preview is not None]
        assert previews and previews[-1].image().size == (8, 8)  # latent2rgb travels at the latents' size
        assert previews[-1].image(enlarged=True).size == (64, 64)
        outputs = task.result()
        assert [o.seed for o in outputs] == [3]
        [path] = task.download(tmp_path)
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (64, 64)
        assert client.get(task.id).status == "completed"
        assert task.get().last_seq == events[-1].seq
        assert client.list(limit=1).data[0].id == task.id
        assert next(client.iter_tasks(page_size=1)).id == task.id
        assert client.models()


def test_a_misspelt_option_is_refused_before_anything_is_sent(server: ServerProcess) -> None:
    with Client(server.base_url) as client:
        newest = [t.id for t in client.list(limit=1)]
        with pytest.raises(TypeError, match="unexpected keyword argument.*: widht"):
            client.submit("a cat", widht=64)  # type: ignore[call-arg]
        assert [t.id for t in client.list(limit=1)] == newest


def test_a_coroutine_of_the_async_client_runs_on_the_clients_loop(server: ServerProcess) -> None:
    with Client(server.base_url) as client:
        task = client.run_coroutine(client.async_client.submit("a paper crane", **SMALL))
        assert client.task(task.id, task.token).result()[0].name == "0.png"


def test_errors_breaking_out_early_and_cancel(server: ServerProcess) -> None:
    with Client(server.base_url) as client:
        with pytest.raises(ValidationError) as refused:
            client.submit("a cat", width=10, **{k: v for k, v in SMALL.items() if k != "width"})
        assert refused.value.field_names == ["width"]
        with pytest.raises(NotFoundError):
            client.get("missing")

        task = client.submit("a long road", **ENDLESS)
        for event in task.events(previews="none"):
            if isinstance(event, ProgressEvent):
                break  # the generator closes its socket
        task.cancel()
        assert isinstance(list(task.events(previews="none"))[-1], CancelEvent)
        with pytest.raises(TaskCancelledError):
            task.result()

        # someone else's task, with only its token
        other = client.task_by_token(client.submit("a small boat", **SMALL).token)  # type: ignore[arg-type]
        assert other.result()[0].name == "0.png"


def test_works_where_an_event_loop_is_already_running(server: ServerProcess) -> None:
    """As in a notebook: the sync client is called from inside a running loop."""

    async def notebook_cell() -> str:
        with Client(server.base_url) as client:
            return client.submit("a teapot", **SMALL).result()[0].contenttype

    assert asyncio.run(notebook_cell()) == "image/png"


def test_close_stops_the_loop_thread(server: ServerProcess) -> None:
    before = {t.name for t in threading.enumerate()}
    client = Client(server.base_url)
    client.get  # noqa: B018 - the thread is up
    client.close()
    client.close()  # twice is fine
    assert {t.name for t in threading.enumerate()} == before
    with pytest.raises(RuntimeError, match="closed"):
        client.get("x")
