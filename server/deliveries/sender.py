"""One attempt of one delivery: a signed POST, and how it went (server.deliveries.policy judges it).

The headers are Standard Webhooks' (client/webhooks.py): `webhook-id` is the delivery's, the same
on every attempt; `webhook-timestamp` and the signatures are this attempt's. The status decides:
once it has arrived, at most MAX_ANSWER_BYTES of the answer's body are read, for at most
ANSWER_BODY_SECONDS, so that the connection can serve the next delivery; a body that takes
longer changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import httpx

from latentcast.client.webhooks import sign
from latentcast.server.deliveries.policy import Answer
from latentcast.server.security import webhooks
from latentcast.server.tasks.outbox import Claim

USER_AGENT = "Latentcast-Webhooks/1"
MAX_ANSWER_BYTES = 64 * 1024
ANSWER_BODY_SECONDS = 1.0


def headers(claim: Claim, body: bytes, secrets: list[str], timestamp: int) -> dict[str, str]:
    signatures = " ".join(sign(secret, claim.id, timestamp, body) for secret in secrets)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": claim.id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
    }


async def attempt(
    client: httpx.AsyncClient, claim: Claim, body: bytes, secrets: list[str], *, timeout: float, now: float
) -> Answer:
    """POST `body` to the claim's URL, signed with each of `secrets`; the answer's status, or why
    there is none within `timeout` seconds."""
    try:
        async with contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout(timeout):
                answer = await stack.enter_async_context(
                    client.stream("POST", claim.url, content=body, headers=headers(claim, body, secrets, int(now)))
                )
            with contextlib.suppress(Exception):  # the status stands whatever the body does
                async with asyncio.timeout(ANSWER_BODY_SECONDS):
                    await _read_some(answer)
            return Answer(answer.status_code, answer.headers.get("retry-after"), answer.headers.get("location"))
    except webhooks.RefusedURL as refused:
        return Answer(refused=str(refused))
    except TimeoutError:
        return Answer(error=f"no answer within {timeout:g} s")
    except Exception as failure:  # whatever one attempt meets is that attempt's failure, never the sender's
        return Answer(error=_describe(failure))


async def _read_some(answer: httpx.Response) -> None:
    read = 0
    async for part in answer.aiter_raw():
        read += len(part)
        if read >= MAX_ANSWER_BYTES:
            return


def _describe(failure: Exception) -> str:
    """The failure as a receiver's operator reads it: its type, its words, and the system's reason
    underneath (`ConnectError: All connection attempts failed (Connection refused)`)."""
    text = f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
    root: BaseException = failure
    while (underneath := root.__cause__ or root.__context__) is not None:
        root = underneath
    if root is not failure and isinstance(root, OSError) and root.errno:
        reason = os.strerror(root.errno)
        if reason not in text:
            text += f" ({reason})"
    return text
