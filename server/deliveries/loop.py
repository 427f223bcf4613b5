"""The sender every API process runs: claims due deliveries from the outbox, sends each, records how
it went.

It wakes when any event is recorded (a delivery may have been written with it, here or, on Redis,
by another process) and at least every `poll` seconds (for retries that fall due, and deliveries
whose claim lapsed on a front-end that died). At most MAX_IN_FLIGHT deliveries are in flight at
once, and at most `--webhook-per-host` to one receiver: a receiver that is slow or down holds up
its own deliveries, no one else's. A backend outage (Redis away, a full disk) pauses claims and
results, logged once when it begins and once when it ends; a result that could not be recorded
is retried until it is (or the claim lapsed and another sender has the delivery).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import httpx

from latentcast.server.config import Settings
from latentcast.server.deliveries import sender
from latentcast.server.deliveries.policy import RetryPolicy
from latentcast.server.observability import metrics
from latentcast.server.security import webhooks
from latentcast.server.security.keys import KeyStore
from latentcast.server.security.webhook_secrets import signing_secrets
from latentcast.server.tasks.outage import Backoff, until_reachable
from latentcast.server.tasks.outbox import Claim, Outcome
from latentcast.server.tasks.ports import Outbox
from latentcast.server.tasks.service import TaskService

log = logging.getLogger("latentcast.webhooks")

# The body of a delivery in one format (`Webhook.format`), or None when its task is gone.
Render = Callable[[TaskService, Claim], Awaitable[bytes | None]]

MAX_IN_FLIGHT = 64
LEASE_MARGIN_SECONDS = 2.0
_OUTCOME_COUNTS = {"delivered": "delivered", "retry": "retried", "failed": "given_up"}


class DeliveryLoop:
    def __init__(
        self,
        settings: Settings,
        service: TaskService,
        outbox: Outbox,
        keys: KeyStore,
        bodies: Mapping[str, Render],
    ) -> None:
        self._service = service
        self._outbox = outbox
        self._keys = keys
        self._bodies = bodies
        self._policy = RetryPolicy.from_settings(settings)
        self._timeout = settings.webhook_timeout
        self._per_host = settings.webhook_per_host
        self._allow_private = settings.webhook_allow_private
        # A claim outlasts the attempt it is for, and the reading and recording around it.
        self._lease = settings.webhook_timeout + sender.ANSWER_BODY_SECONDS + LEASE_MARGIN_SECONDS
        self._poll = min(1.0, max(0.05, settings.webhook_first_retry))
        self._backoff = Backoff("webhook deliveries", log)
        self._wake = asyncio.Event()
        self._in_flight: collections.Counter[str] = collections.Counter()  # host -> deliveries
        self._running: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Send deliveries until cancelled (the app's lifespan cancels it at shutdown)."""
        unsubscribe = self._service.subscribe(None, lambda event: self._wake.set())
        client = webhooks.client(allow_private=self._allow_private, timeout=self._timeout)
        try:
            while True:
                self._wake.clear()
                room = MAX_IN_FLIGHT - len(self._running)
                if room > 0:
                    for claim in await until_reachable(lambda: self._claim(room), self._backoff):
                        self._start(client, claim)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)
        finally:
            unsubscribe()
            for task in self._running:
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)
            await client.aclose()

    async def _claim(self, room: int) -> list[Claim]:
        now = time.time()
        return await self._outbox.claim(
            now=now, limit=room, lease_until=now + self._lease, per_host=self._per_host, busy=dict(self._in_flight)
        )

    def _start(self, client: httpx.AsyncClient, claim: Claim) -> None:
        self._in_flight[claim.host] += 1
        task = asyncio.get_running_loop().create_task(self._deliver(client, claim), name=f"webhook-{claim.id}")
        self._running.add(task)
        task.add_done_callback(lambda done: self._finished(done, claim.host))

    def _finished(self, task: asyncio.Task[None], host: str) -> None:
        self._running.discard(task)
        self._in_flight[host] -= 1
        if self._in_flight[host] <= 0:
            del self._in_flight[host]
        if not task.cancelled() and task.exception() is not None:
            # its claim lapses and the delivery is tried again then
            log.error("webhook %s failed unexpectedly", task.get_name(), exc_info=task.exception())
        self._wake.set()  # room for one more, and the task's next delivery may be due

    async def _deliver(self, client: httpx.AsyncClient, claim: Claim) -> None:
        outcome = await self._attempt(client, claim)
        if not await until_reachable(lambda: self._outbox.settle(claim, outcome), self._backoff):
            return  # the claim lapsed meanwhile: the sender that holds the delivery now records it
        metrics.webhook_deliveries.labels(_OUTCOME_COUNTS[outcome.state]).inc()
        _log(claim, outcome)

    async def _attempt(self, client: httpx.AsyncClient, claim: Claim) -> Outcome:
        render = self._bodies.get(claim.format)
        if render is None:
            return Outcome("failed", time.time(), error=f"no body of the format {claim.format!r} is known here")
        body = await until_reachable(lambda: render(self._service, claim), self._backoff)
        if body is None:
            return Outcome("failed", time.time(), error="its task no longer exists")
        secrets = await until_reachable(lambda: signing_secrets(self._keys, claim.owner), self._backoff)
        now = time.time()
        answer = await sender.attempt(client, claim, body, secrets, timeout=self._timeout, now=now)
        return self._policy.outcome(claim, answer, time.time())


def _log(claim: Claim, outcome: Outcome) -> None:
    """One line per attempt, naming the receiver by its host only: a webhook URL may hold a secret."""
    attempt = claim.attempts + 1
    what = f"task {claim.task_id}: webhook {claim.type} (seq {claim.seq}) to {claim.host}"
    result = f"HTTP {outcome.status}" if outcome.status is not None else ""
    if outcome.error:
        result = f"{result}: {outcome.error}" if result else outcome.error
    if outcome.state == "delivered":
        log.debug("%s delivered (attempt %d)", what, attempt)
    elif outcome.state == "retry":
        wait = max(0.0, outcome.at - time.time())
        log.info("%s: attempt %d failed (%s); next in %.1f s", what, attempt, result, wait)
    else:
        log.warning("%s: given up after attempt %d (%s)", what, attempt, result)
