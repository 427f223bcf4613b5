"""One attempt of one delivery (server.deliveries.sender) against a real receiver: the address is
checked again at delivery time, after resolving the name then, and an answer that does not come
within the timeout is an attempt that failed."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from latentcast.server.deliveries import sender
from latentcast.server.deliveries.policy import Answer, RetryPolicy
from latentcast.server.security import webhooks
from latentcast.server.security.webhook_secrets import new_secret
from latentcast.server.tasks.outbox import Claim, host_of
from tests.receiver import Receiver, Reply

BODY = b'{"type":"task_cancel","id":"t","seq":1,"time":1.0,"message":{"reason":"r"}}'


def _claim(url: str) -> Claim:
    return Claim("msg_t_1", "t", 1, "task_cancel", url, "native", None, host_of(url), time.time(), attempts=0,
                 lease="l")


async def test_a_url_that_leads_inward_by_delivery_time_is_not_sent_and_given_up(
    receiver: Callable[..., Receiver],
) -> None:
    """A URL that passed at submit but now resolves to loopback (as `localhost` does) gets nothing."""
    hook = receiver()
    claim = _claim(hook.url.replace("127.0.0.1", "localhost"))
    async with webhooks.client(allow_private=False, timeout=10) as client:
        answer = await sender.attempt(client, claim, BODY, [new_secret()], timeout=10, now=time.time())
    assert answer.refused is not None and re.fullmatch(
        r"localhost resolves to (127\.0\.0\.1|::1), which is a loopback address; only public addresses are allowed",
        answer.refused,
    )
    outcome = RetryPolicy().outcome(claim, answer, time.time())
    assert (outcome.state, outcome.error) == ("failed", answer.refused)
    assert hook.requests == []
    async with webhooks.client(allow_private=True, timeout=10) as client:  # the same URL, allowed: sent
        answer = await sender.attempt(client, claim, BODY, [new_secret()], timeout=10, now=time.time())
    assert answer.status == 200 and [r["headers"]["webhook-id"] for r in hook.requests] == ["msg_t_1"]


async def test_no_answer_in_time_is_a_failed_attempt_and_an_endless_one_a_status(
    receiver: Callable[..., Receiver],
) -> None:
    silent, endless = receiver([Reply(hold=True)]), receiver([Reply(201, drip=True)])
    async with webhooks.client(allow_private=True, timeout=10) as client:
        answer = await sender.attempt(client, _claim(silent.url), BODY, [new_secret()], timeout=0.5, now=time.time())
        assert answer == Answer(error="no answer within 0.5 s")
        answer = await sender.attempt(client, _claim(endless.url), BODY, [new_secret()], timeout=5, now=time.time())
        assert answer.status == 201 and answer.error is None
