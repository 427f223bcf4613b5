"""Joining a task's stored log with its live events, with no gap and no duplicate.

A subscriber that asks for `since: N` must see N+1, N+2, ... exactly once, even though the
stored log and the live feed overlap while it catches up. The subscriber listens to the live
feed first, reads the log, then lets every event through one `Cursor`: the cursor drops what it
has already passed and reports a hole, so the caller can fill it from the log.
"""

from __future__ import annotations

import dataclasses

from latentcast.server.protocol.events import Event


class Gap(Exception):
    """An event arrived beyond the next expected seq: the caller must re-read the log."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"expected seq {expected}, got {got}")
        self.expected = expected
        self.got = got


@dataclasses.dataclass(slots=True)
class Cursor:
    """The last seq delivered to one subscriber of one task."""

    last: int = 0
    done: bool = False

    def admit(self, event: Event) -> bool:
        """Whether `event` is the next one to deliver; raises `Gap` when some are missing."""
        if self.done or event.seq <= self.last:
            return False
        if event.seq != self.last + 1:
            raise Gap(self.last + 1, event.seq)
        self.last = event.seq
        self.done = event.terminal
        return True
