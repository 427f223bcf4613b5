"""Work a request starts that outlives it (Wiro's callback deliveries), owned by the app.

Each job is held until it ends (the event loop keeps only weak references to tasks) and the app's
lifespan closes the whole set at shutdown, cancelling what is still waiting, so nothing outlives
the server's backend. A job that fails is logged, not left for asyncio to report at exit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("latentcast.server")


class BackgroundJobs:
    def __init__(self) -> None:
        self._running: set[asyncio.Task[None]] = set()

    def start(self, job: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(job, name=name)
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background job %s failed", task.get_name(), exc_info=task.exception())

    async def close(self) -> None:
        """Cancel every job still running and wait until each has stopped."""
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
