"""Observability: Prometheus metrics (`GET /metrics`), structured logs, the console progress bar.

Metrics and status logs come from the event stream (`observer`), so the service itself stays
free of them; the transports count their subscribers and sends, and the step callback times its
previews, which each run's event pump hands to the `metrics.observe_preview` the top wires into
it (from a worker process, over its channel). See
docs/observability.md.
"""

from __future__ import annotations

from latentcast.server.observability.console import ConsoleProgress
from latentcast.server.observability.logs import configure_logging, console_progress
from latentcast.server.observability.observer import TaskObserver, counting_heartbeats, observe, refresh
from latentcast.server.tasks.service import TaskService

__all__ = [
    "TaskObserver", "attach", "configure_logging", "console_progress", "counting_heartbeats", "observe", "refresh"
]


class Observability:
    """What the app's lifespan starts and stops: the metrics/log observer and the console bar."""

    def __init__(self, observer: TaskObserver, progress: ConsoleProgress | None) -> None:
        self.observer = observer
        self.progress = progress

    def close(self) -> None:
        self.observer.close()
        if self.progress is not None:
            self.progress.close()


async def attach(service: TaskService) -> Observability:
    """Start observing the service's events: call in the lifespan before `service.recover()`."""
    observer = await observe(service)
    progress = console_progress()
    if progress is not None:
        progress.attach(service)
    return Observability(observer, progress)
