"""`Client` and `SyncTask`: the `AsyncClient` surface for scripts and notebooks, without `await`.

    with Client("http://127.0.0.1:8000") as client:
        client.run("a lighthouse at dusk", width=512, height=512)[0].save("lighthouse.png")  # one call

        task = client.submit(prompt="a lighthouse at dusk", width=512, height=512)
        for event in task.events():
            print(event.type)
        print(task.download("out"))

Every method runs the matching `AsyncClient` / `Task` coroutine on a private event loop thread,
so the two share one implementation (retries, reconnects, errors) and the sync client also works
where an event loop already runs (Jupyter).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

import httpx

from latentcast.client._loop import LoopThread
from latentcast.client.async_client import DEFAULT_TIMEOUT, AsyncClient, Task
from latentcast.client.events import Event
from latentcast.client.models import Delivery, GeneratedImage, Output, TaskInfo, TaskPage
from latentcast.client.task_options import TaskOptions
from latentcast.wire import PreviewMode

__all__ = ["Client", "SyncTask"]

T = TypeVar("T")


class Client:
    """A blocking client of one Latentcast server; the arguments are `AsyncClient`'s.

    Use it as `with Client(...) as client:` or call `client.close()`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        max_reconnects: int = 10,
        reconnect_delay: tuple[float, float] = (0.25, 8.0),
    ) -> None:
        self._loop = LoopThread()

        async def build() -> AsyncClient:
            return AsyncClient(
                base_url,
                api_key,
                timeout=timeout,
                max_retries=max_retries,
                max_reconnects=max_reconnects,
                reconnect_delay=reconnect_delay,
            )

        self._async = self._loop.run(build())
        self._closed = False

    @property
    def base_url(self) -> str:
        return self._async.base_url

    @property
    def async_client(self) -> AsyncClient:
        """The `AsyncClient` underneath (its coroutines run on this client's loop thread only: `run`)."""
        return self._async

    def run_coroutine(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine of `async_client` (or of one of its tasks) on this client's loop thread,
        blocking until it is done; its result is returned, its exception raised."""
        return self._loop.run(coro)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the loop thread."""
        if not self._closed:
            self._closed = True
            self._loop.run(self._async.close())
            self._loop.close()

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def run(
        self, prompt: str, *, on_event: Callable[[Event], object] | None = None, **options: Unpack[TaskOptions]
    ) -> builtins.list[GeneratedImage]:
        """Generate in one call: submit, wait, return the images with their bytes; see
        `AsyncClient.run`. `on_event` is called in this thread with every event as it arrives."""
        task = self.submit(prompt, **options)
        if on_event is not None:
            for event in task.events():
                on_event(event)
        return task.images()

    def submit(self, prompt: str, **options: Unpack[TaskOptions]) -> SyncTask:
        """Queue a generation and return its task; see `AsyncClient.submit`."""
        return SyncTask(self, self.run_coroutine(self._async.submit(prompt, **options)))

    def task(self, task_id: str, token: str | None = None) -> SyncTask:
        """A handle on an existing task, e.g. one someone else submitted, given its token."""
        return SyncTask(self, self._async.task(task_id, token))

    def task_by_token(self, token: str) -> SyncTask:
        """The task that has this token."""
        return SyncTask(self, self.run_coroutine(self._async.task_by_token(token)))

    def get(self, task_id: str, token: str | None = None) -> TaskInfo:
        """The task's detail."""
        return self.run_coroutine(self._async.get(task_id, token))

    def list(self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None) -> TaskPage:
        """One page of tasks, newest first."""
        return self.run_coroutine(self._async.list(status=status, limit=limit, cursor=cursor))

    def iter_tasks(self, *, status: str | None = None, page_size: int = 50) -> Iterator[TaskInfo]:
        """Every task, newest first, fetching pages as it goes."""
        cursor = None
        while True:
            page = self.list(status=status, limit=page_size, cursor=cursor)
            yield from page.data
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def models(self) -> builtins.list[dict[str, Any]]:
        """The models the server serves."""
        return self.run_coroutine(self._async.models())


class SyncTask:
    """The blocking counterpart of `Task`: the same methods, without `await`."""

    def __init__(self, client: Client, task: Task) -> None:
        self.client = client
        self._task = task

    @property
    def id(self) -> str:
        return self._task.id

    @property
    def token(self) -> str | None:
        return self._task.token

    @property
    def info(self) -> TaskInfo | None:
        """The detail from the submit or the last `get()`."""
        return self._task.info

    @property
    def last_seq(self) -> int:
        return self._task.last_seq

    @property
    def reconnects(self) -> int:
        return self._task.reconnects

    def __repr__(self) -> str:
        return f"SyncTask({self.id!r})"

    def get(self) -> TaskInfo:
        return self.client.run_coroutine(self._task.get())

    def events(self, previews: PreviewMode = "binary", since: int = 0) -> Iterator[Event]:
        """Every event after `since` until the terminal one, resuming after dropped sockets."""
        stream = self._task.events(previews=previews, since=since)
        run = self.client.run_coroutine

        async def next_event() -> Event:
            return await anext(stream)

        try:
            while True:
                try:
                    event = run(next_event())
                except StopAsyncIteration:
                    return
                yield event
        finally:
            run(stream.aclose())

    def result(self) -> list[Output]:
        """Wait for the outputs. Raises `TaskFailedError` or `TaskCancelledError`."""
        return self.client.run_coroutine(self._task.result())

    def cancel(self) -> TaskInfo:
        """Ask the server to cancel the task (`ConflictError` once it has ended)."""
        return self.client.run_coroutine(self._task.cancel())

    def deliveries(self) -> list[Delivery]:
        """The task's webhook deliveries, in seq order."""
        return self.client.run_coroutine(self._task.deliveries())

    def read_output(self, output: Output | str) -> bytes:
        return self.client.run_coroutine(self._task.read_output(output))

    def save_output(self, output: Output | str, path: str | Path) -> Path:
        return self.client.run_coroutine(self._task.save_output(output, path))

    def images(self) -> list[GeneratedImage]:
        """Wait for the outputs and return each with its bytes."""
        return self.client.run_coroutine(self._task.images())

    def download(self, directory: str | Path = ".") -> list[Path]:
        """Wait for the outputs and save each as `directory/{task id}-{name}`."""
        return self.client.run_coroutine(self._task.download(directory))
