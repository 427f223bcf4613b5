"""A one-line progress display for the command line: queue position, then step, it/s and ETA.

On a terminal the line is redrawn in place; otherwise (a pipe, a log file) each change of phase
is printed on its own line and steps at most every `min_interval` seconds (always the last).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_seconds(seconds: float | None) -> str:
    """`0.4s`, `12s`, `3:07`, `1:02:03`; `?` when unknown."""
    if seconds is None or seconds < 0:
        return "?"
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressBar:
    """Draws the state of one task on `stream` (stderr by default)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        width: int = 24,
        interactive: bool | None = None,
        enabled: bool = True,
        min_interval: float = 0.5,
    ) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.enabled = enabled
        self.min_interval = min_interval
        self._line = ""
        self._shown = ""
        self._last_print = 0.0
        self._started = time.monotonic()

    # -- what the task is doing ---------------------------------------------------------------

    def queued(self, position: int | None, length: int | None) -> None:
        where = f"position {position}" if position is not None else "waiting"
        if position is not None and length:
            where += f" of {length}"
        self._set(f"queued: {where}", force=True)

    def status(self, text: str) -> None:
        self._set(text, force=True)

    def step(self, step: int, steps: int, it_per_s: float | None = None, eta_seconds: float | None = None) -> None:
        fraction = step / steps if steps else 0.0
        filled = round(self.width * fraction)
        bar = "#" * filled + "-" * (self.width - filled)
        speed = f"{it_per_s:.2f} it/s" if it_per_s is not None else "? it/s"
        line = f"[{bar}] step {step}/{steps} {fraction:4.0%} | {speed} | ETA {format_seconds(eta_seconds)}"
        self._set(line, force=step in (1, steps))

    def note(self, text: str) -> None:
        """A line of its own (a warning, a saved file), above the bar."""
        if not self.enabled:
            return
        self._clear()
        self.stream.write(text + "\n")
        self._redraw()

    def finish(self, text: str | None = None) -> None:
        """Leave the bar's last state (or `text`) on its own line."""
        if not self.enabled:
            return
        if text is not None:
            self._line = text
        if self.interactive:
            self._redraw()
            if self._line:
                self.stream.write("\n")
        elif self._line and self._line != self._shown:
            self.stream.write(self._line + "\n")
        self._line = self._shown = ""
        self.stream.flush()

    # -- drawing -------------------------------------------------------------------------------

    def _set(self, line: str, *, force: bool = False) -> None:
        self._line = line
        if not self.enabled:
            return
        now = time.monotonic()
        if self.interactive:
            self._redraw()
        elif line != self._shown and (force or now - self._last_print >= self.min_interval):
            self.stream.write(line + "\n")
            self.stream.flush()
            self._shown = line
            self._last_print = now

    def _redraw(self) -> None:
        if self.interactive and self._line:
            self.stream.write("\r\x1b[2K" + self._line)
            self.stream.flush()
            self._shown = self._line

    def _clear(self) -> None:
        if self.interactive and self._shown:
            self.stream.write("\r\x1b[2K")
