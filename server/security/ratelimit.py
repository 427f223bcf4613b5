"""Per-caller limits without I/O: requests per minute (token buckets) and tasks in flight.

Pure bookkeeping keyed by an identity string (an API key's id, or a client address); the clock is
injected so the arithmetic is tested without waiting. `server.security.throttle` applies them to
requests and tasks.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable


@dataclasses.dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Requests per minute per identity, as token buckets: a whole minute's allowance may come at
    once, then it refills evenly (a sliding window without storing every request's time)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, prune_above: int = 10_000) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._prune_above = prune_above

    def take(self, identity: str, per_minute: int) -> float:
        """Spend one request of `identity`'s allowance: 0 when it may go ahead, otherwise the
        seconds until it may (nothing is spent then)."""
        now = self._clock()
        rate = per_minute / 60.0
        bucket = self._buckets.get(identity)
        if bucket is None:
            bucket = self._remember(identity, _Bucket(float(per_minute), now))
        tokens = min(float(per_minute), bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if tokens >= 1.0:
            bucket.tokens = tokens - 1.0
            return 0.0
        bucket.tokens = tokens
        return (1.0 - tokens) / rate

    def _remember(self, identity: str, bucket: _Bucket) -> _Bucket:
        # A refilled bucket is the same as none: forgetting those keeps memory to the callers of
        # the last minute or so, whatever number of addresses has ever called.
        if len(self._buckets) >= self._prune_above:
            now = self._clock()
            full = [who for who, b in self._buckets.items() if now - b.at >= 60.0]
            for who in full:
                del self._buckets[who]
            self._prune_above = max(self._prune_above, 2 * len(self._buckets))
        self._buckets[identity] = bucket
        return bucket


class Slot:
    """One task's place in its identity's allowance, reserved before the task has an id."""

    __slots__ = ("identity", "task_id", "held")

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.task_id: str | None = None
        self.held = True


class InFlight:
    """Tasks each identity has queued or running.

    A slot is reserved before the task is queued, so that concurrent submits cannot all pass the
    check, and bound to the task's id once it has one; the task's terminal event frees it.
    """

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._by_task: dict[str, Slot] = {}

    def count(self, identity: str) -> int:
        return self._counts[identity]

    def reserve(self, identity: str, limit: int) -> Slot | None:
        """A slot for one more task, or None when `identity` already has `limit` in flight."""
        if self._counts[identity] >= limit:
            return None
        self._counts[identity] += 1
        return Slot(identity)

    def bind(self, slot: Slot, task_id: str) -> None:
        slot.task_id = task_id
        self._by_task[task_id] = slot

    def release(self, slot: Slot) -> None:
        """Free a slot (once): its task ended, or it was never queued."""
        if not slot.held:
            return
        slot.held = False
        if slot.task_id is not None:
            self._by_task.pop(slot.task_id, None)
        self._counts[slot.identity] -= 1
        if self._counts[slot.identity] <= 0:
            del self._counts[slot.identity]

    def finished(self, task_id: str) -> None:
        slot = self._by_task.get(task_id)
        if slot is not None:
            self.release(slot)
