"""What one delivery attempt's answer means: delivered, retried when, or given up. No I/O.

Any 2xx delivers. 410 Gone ends the retries: the receiver said it wants no more. Anything else
(another status, a redirect, which is never followed, no answer in time, no connection) is
retried with exponential backoff and jitter, or after the receiver's `Retry-After` when it sends
one, for as long as the retry window lasts after the event (`--webhook-retry-for`, 24 hours). An
address that the delivery-time check refuses (server.security.webhooks) is given up at once: the
same name would lead inward again.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils

from latentcast.client.async_client import backoff_delay
from latentcast.server.config import Settings
from latentcast.server.tasks.outbox import Claim, Outcome


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """How one attempt went: the receiver's status and headers, or what kept it from answering
    (`error`), or the address rule's refusal (`refused`)."""

    status: int | None = None
    retry_after: str | None = None
    location: str | None = None
    error: str | None = None
    refused: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    first: float = 5.0  # seconds before the first retry
    longest: float = 3600.0  # the longest wait between two attempts
    window: float = 24 * 3600.0  # seconds after its event a delivery is still retried

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.webhook_first_retry, settings.webhook_max_retry_delay, settings.webhook_retry_for)

    def outcome(self, claim: Claim, answer: Answer, now: float) -> Outcome:
        """What to record for `claim` after `answer` (its attempt number is `claim.attempts + 1`)."""
        if answer.refused is not None:
            return Outcome("failed", now, error=answer.refused)
        status = answer.status
        if status is not None and 200 <= status < 300:
            return Outcome("delivered", now, status)
        if status == 410:
            return Outcome("failed", now, status, "410 Gone: the receiver wants no more deliveries")
        error = answer.error
        if status is not None and 300 <= status < 400:
            error = f"a redirect (to {answer.location or 'nowhere'}), which is not followed"
        wait = retry_after_seconds(answer.retry_after, now) if status is not None else None
        if wait is None:
            wait = backoff_delay(claim.attempts + 1, self.first, self.longest)
        if now + wait > claim.created_at + self.window:
            ended = f"retries ended {self.window:g} s after the event"
            return Outcome("failed", now, status, f"{error}; {ended}" if error else ended)
        return Outcome("retry", now + wait, status, error)


def retry_after_seconds(header: str | None, now: float) -> float | None:
    """Seconds a `Retry-After` header asks to wait (a number of seconds or an HTTP date), or None
    when there is none or it cannot be read."""
    if header is None:
        return None
    text = header.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is in GMT, whether it says so or not
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now)
