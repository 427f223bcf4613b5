"""A progress bar in the server's console for each running task: step, steps, it/s, ETA.

Shown only when the server's stderr is a terminal and logs are text (`--log-format text`); it is
driven by the event stream like every other subscriber and redrawn at most every `min_interval`
seconds, so a model doing a thousand steps a second costs ten terminal writes a second. Log
records go through `ConsoleHandler`, which lifts the bar, prints the record, and puts it back, so
the two never garble each other.
"""

from __future__ import annotations

import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from latentcast.server.protocol.events import EventType, RecordedEvent
from latentcast.server.tasks.service import TaskService

_CLEAR = "\r\x1b[K"


class _Bar:
    __slots__ = ("steps", "step", "it_per_s", "eta")

    def __init__(self, steps: int) -> None:
        self.steps = max(1, steps)
        self.step = 0
        self.it_per_s: float | None = None
        self.eta: float | None = None


class ConsoleProgress:
    def __init__(self, stream: TextIO | None = None, *, width: int = 20, min_interval: float = 0.1) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.min_interval = min_interval
        self._bars: dict[str, _Bar] = {}
        self._shown = False
        self._last_draw = 0.0
        self._lock = threading.RLock()
        self._unsubscribe: Callable[[], None] | None = None

    def attach(self, service: TaskService) -> ConsoleProgress:
        self._unsubscribe = service.subscribe(None, self.on_event)
        return self

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        with self._lock:
            self._bars.clear()
            self.clear()

    def on_event(self, event: RecordedEvent) -> None:
        type_ = event.type
        if type_ == EventType.PROGRESS:
            bar = self._bars.get(event.task_id)
            if bar is None:
                return
            message = event.message
            bar.step, bar.steps = message.get("step", bar.step), message.get("steps", bar.steps)
            bar.it_per_s, bar.eta = message.get("it_per_s"), message.get("eta_seconds")
            if bar.step >= bar.steps or time.monotonic() - self._last_draw >= self.min_interval:
                self.redraw()
        elif type_ == EventType.START:
            message = event.message if isinstance(event.message, dict) else {}
            self._bars[event.task_id] = _Bar(int(message.get("steps", 1)))
            self.redraw()
        elif event.task_id in self._bars and (type_ in (EventType.END, EventType.OUTPUT_FULL) or event.terminal):
            del self._bars[event.task_id]
            self.redraw()

    # -- drawing ----------------------------------------------------------------------------

    def line(self) -> str:
        parts = []
        for task_id, bar in self._bars.items():
            filled = round(self.width * bar.step / bar.steps)
            speed = f"{bar.it_per_s:.1f} it/s" if bar.it_per_s is not None else "? it/s"
            eta = f" ETA {bar.eta:.1f}s" if bar.eta is not None and bar.step < bar.steps else ""
            parts.append(
                f"{task_id} [{'#' * filled}{'-' * (self.width - filled)}] {bar.step}/{bar.steps} {speed}{eta}"
            )
        text = " | ".join(parts)
        columns = shutil.get_terminal_size((120, 24)).columns
        return text if len(text) < columns else text[: max(0, columns - 2)] + "…"

    def redraw(self) -> None:
        with self._lock:
            text = self.line()
            if not text and not self._shown:
                return
            self.stream.write(_CLEAR + text)
            self.stream.flush()
            self._shown = bool(text)
            self._last_draw = time.monotonic()

    def clear(self) -> None:
        with self._lock:
            if self._shown:
                self.stream.write(_CLEAR)
                self.stream.flush()
                self._shown = False


class ConsoleHandler(logging.StreamHandler[TextIO]):
    """A stderr handler that keeps the progress bar below the log lines."""

    def __init__(self, stream: TextIO, progress: ConsoleProgress) -> None:
        super().__init__(stream)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        with self.progress._lock:
            self.progress.clear()
            super().emit(record)
            if self.progress._bars:
                self.progress.redraw()
