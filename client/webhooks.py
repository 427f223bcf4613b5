"""Webhook signatures, the Standard Webhooks way: what the server signs and a receiver checks.

Every webhook Latentcast sends carries three headers (https://www.standardwebhooks.com):

- `webhook-id`: the delivery's id, the same on every retry of it, so a receiver can drop a repeat;
- `webhook-timestamp`: Unix seconds when this attempt was signed;
- `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed by the
  secret's bytes (a secret is `whsec_` + base64). While a secret is being rotated there are two,
  separated by a space, one per secret, and either verifies.

`verify_webhook` checks them; any Standard Webhooks library (`standardwebhooks` on PyPI, and its
ports to other languages) checks the same bytes the same way. No I/O here: the server signs with
`sign`, a receiver verifies with `verify_webhook`, both from this one module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from latentcast.client.errors import LatentcastError

__all__ = ["SECRET_PREFIX", "TOLERANCE_SECONDS", "WebhookVerificationError", "sign", "verify_webhook"]

SECRET_PREFIX = "whsec_"
# How far a webhook's timestamp may be from the receiver's clock: a replay of a captured request
# is refused after this long (the Standard Webhooks libraries' own default).
TOLERANCE_SECONDS = 300


class WebhookVerificationError(LatentcastError):
    """A webhook that did not come from the server with this secret, or came too late: a header is
    missing, its timestamp is too old or too new, or no signature matches."""


def secret_bytes(secret: str | bytes) -> bytes:
    """The HMAC key a secret stands for: the base64 after `whsec_` (raw bytes are the key itself)."""
    if isinstance(secret, bytes):
        return secret
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if not key:
        raise ValueError("a webhook secret must not be empty")
    return key


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `webhook-signature` entry: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str | bytes | Iterable[str | bytes],
    *,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> Any:
    """The webhook's JSON body, once its headers prove the server sent it; else `WebhookVerificationError`.

    `body` is the request body exactly as received (bytes; a str is taken as UTF-8). `secret` is the
    one `latentcast keys create` showed (or the server's), or several, e.g. the old and the new
    one while rotating. `headers` may be any mapping: names are compared without case.

        payload = verify_webhook(request.headers, await request.body(), "whsec_...")
    """
    raw = body.encode() if isinstance(body, str) else bytes(body)
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id, stamp, signatures = (lowered.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError(f"webhook-timestamp is not Unix seconds: {stamp!r}") from None
    skew = (time.time() if now is None else now) - timestamp
    if abs(skew) > tolerance:
        raise WebhookVerificationError(
            f"webhook-timestamp is {abs(skew):.0f} s {'old' if skew > 0 else 'ahead'} (at most {tolerance:g} s)"
        )
    secrets = [secret] if isinstance(secret, str | bytes) else list(secret)
    given = signatures.split(" ")
    for one in secrets:
        expected = sign(one, msg_id, timestamp, raw).encode()
        if any(hmac.compare_digest(expected, candidate.encode()) for candidate in given):
            return orjson.loads(raw)
    raise WebhookVerificationError("no signature in webhook-signature matches this secret")
