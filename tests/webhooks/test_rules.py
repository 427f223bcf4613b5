"""The rules of webhooks, without I/O: which events become deliveries, what an attempt's answer
means, and the signatures, checked against the independent `standardwebhooks` package."""

from __future__ import annotations

import base64
import datetime
import random
import re
import time

import pytest
import standardwebhooks

from latentcast import WebhookVerificationError, verify_webhook
from latentcast.client.webhooks import sign
from latentcast.server.deliveries.policy import Answer, RetryPolicy, retry_after_seconds
from latentcast.server.protocol.events import RecordedEvent
from latentcast.server.security.webhook_secrets import WebhookSecrets, new_secret
from latentcast.server.tasks.outbox import Claim, plan_delivery
from latentcast.server.tasks.params import TaskParams
from latentcast.server.tasks.record import TaskRecord
from latentcast.server.tasks.webhook import TERMINAL_EVENTS, Webhook

NOW = 1_750_000_000.0


def _record(webhook: Webhook | None) -> TaskRecord:
    params = TaskParams(prompt="p", width=64, height=64)
    return TaskRecord(id="t1", token="tok", params=params, model="m", seed=1, created_at=NOW, owner="key_1",
                      webhook=webhook)


def _planned(record: TaskRecord, log: list[tuple[str, object, float]]) -> list[tuple[int, str]]:
    """(seq, type) of each event of `log` that becomes a delivery, folded in order as a store does."""
    planned = []
    for seq, (type_, message, at) in enumerate(log, start=1):
        event = RecordedEvent(record.id, seq, type_, at, message)
        record.apply(event)
        if (delivery := plan_delivery(record, event)) is not None:
            planned.append((delivery.seq, delivery.type))
    return planned


def _progress(step: int, steps: int, at: float) -> tuple[str, object, float]:
    return ("task_progress", {"step": step, "steps": steps, "percent": 100 * step / steps}, at)


INTERRUPTED = {"code": "interrupted", "message": "the server stopped; queued again"}
FAILED = {"code": "generation_failed", "message": "out of memory", "fatal": True}


def test_by_default_only_the_event_that_ends_the_task_is_delivered() -> None:
    log = [
        ("task_queue", {"position": 1, "queue_length": 1}, NOW), ("task_accept", {"worker": "w"}, NOW),
        ("task_error", INTERRUPTED, NOW + 1), ("task_queue", {"position": 1, "queue_length": 1}, NOW + 1),
        ("task_start", {"steps": 2}, NOW + 2), _progress(1, 2, NOW + 3), ("task_error", FAILED, NOW + 4),
    ]
    assert _planned(_record(Webhook("https://example.com/h")), log) == [(7, "task_error")]
    ended = [("task_queue", {}, NOW), ("task_postprocess_end", [], NOW + 1)]
    assert _planned(_record(Webhook("https://example.com/h")), ended) == [(2, "task_postprocess_end")]
    assert _planned(_record(Webhook("https://example.com/h")), [("task_cancel", {"reason": "r"}, NOW)]) == [
        (1, "task_cancel")
    ]
    assert _planned(_record(None), ended) == []


def test_the_listed_types_are_delivered_and_progress_at_most_once_a_second_with_the_last_step() -> None:
    hook = Webhook("https://example.com/h", ("task_start", "task_progress", "task_error"), "native")
    log = [
        ("task_queue", {}, NOW), ("task_start", {"steps": 6}, NOW),
        _progress(1, 6, NOW + 0.1), _progress(2, 6, NOW + 0.5), _progress(3, 6, NOW + 1.09),
        _progress(4, 6, NOW + 1.1), _progress(5, 6, NOW + 1.2), ("task_error", INTERRUPTED, NOW + 1.3),
        _progress(6, 6, NOW + 1.3), ("task_postprocess_end", [], NOW + 2),
    ]
    # step 1, then the first a second later (4), then the last (6); a task_error only when it ends
    # the task; task_postprocess_end is not listed
    assert _planned(_record(hook), log) == [(2, "task_start"), (3, "task_progress"), (6, "task_progress"),
                                           (9, "task_progress")]


def test_a_delivery_carries_what_its_sender_needs() -> None:
    record = _record(Webhook("https://Hooks.Example.com:8443/in?k=1", TERMINAL_EVENTS, "wiro"))
    event = RecordedEvent(record.id, 1, "task_cancel", NOW, {"reason": "r"})
    record.apply(event)
    delivery = plan_delivery(record, event)
    assert delivery is not None
    assert (delivery.id, delivery.url, delivery.format, delivery.owner, delivery.host, delivery.created_at) == (
        "msg_t1_1", "https://Hooks.Example.com:8443/in?k=1", "wiro", "key_1", "hooks.example.com:8443", NOW
    )


def test_a_record_keeps_its_webhook_and_reads_an_older_version_s_callback_url() -> None:
    record = _record(Webhook("https://example.com/h", ("task_start",), "native"))
    assert TaskRecord.from_json(record.to_json()).webhook == record.webhook
    older = record.to_json().replace(b'"webhook":{"url":"https://example.com/h","events":["task_start"],'
                                     b'"format":"native"}', b'"callback_url":"https://example.com/w"')
    assert TaskRecord.from_json(older).webhook == Webhook("https://example.com/w", TERMINAL_EVENTS, "wiro")


CLAIM = Claim("msg_t1_9", "t1", 9, "task_postprocess_end", "https://example.com/h", "native", None,
              "example.com", NOW, attempts=0, lease="l")
POLICY = RetryPolicy(first=5.0, longest=3600.0, window=24 * 3600.0)


def test_a_2xx_delivers_and_410_gives_up_at_once() -> None:
    for status in (200, 202, 204, 299):
        assert POLICY.outcome(CLAIM, Answer(status), NOW + 1).state == "delivered"
    gone = POLICY.outcome(CLAIM, Answer(410), NOW + 1)
    assert (gone.state, gone.status, gone.error) == ("failed", 410, "410 Gone: the receiver wants no more deliveries")


def test_anything_else_is_retried_with_a_growing_jittered_delay() -> None:
    random.seed(7)
    for attempts, (low, high) in enumerate([(2.5, 5), (5, 10), (10, 20), (20, 40)]):
        claim = Claim(*[getattr(CLAIM, f) for f in ("id", "task_id", "seq", "type", "url", "format", "owner", "host",
                                                     "created_at")], attempts=attempts, lease="l")
        for answer in (Answer(500), Answer(error="ConnectError: refused"), Answer(429)):
            outcome = POLICY.outcome(claim, answer, NOW)
            assert outcome.state == "retry" and low <= outcome.at - NOW <= high, (attempts, answer, outcome)
    late = POLICY.outcome(Claim(**{**_fields(CLAIM), "attempts": 30}), Answer(500), NOW)
    assert late.state == "retry" and 1800 <= late.at - NOW <= 3600, "the longest wait caps the growth"


def _fields(claim: Claim) -> dict[str, object]:
    return {name: getattr(claim, name) for name in claim.__dataclass_fields__}


def test_a_redirect_is_retried_and_not_followed_and_retry_after_is_honoured() -> None:
    moved = POLICY.outcome(CLAIM, Answer(307, location="https://elsewhere.example/h"), NOW)
    assert (moved.state, moved.status, moved.error) == (
        "retry", 307, "a redirect (to https://elsewhere.example/h), which is not followed"
    )
    asked = POLICY.outcome(CLAIM, Answer(503, retry_after="120"), NOW)
    assert (asked.state, asked.at) == ("retry", NOW + 120)
    date = datetime.datetime.fromtimestamp(NOW + 600, datetime.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert POLICY.outcome(CLAIM, Answer(429, retry_after=date), NOW).at == NOW + 600
    assert retry_after_seconds("soon", NOW) is None and retry_after_seconds(None, NOW) is None


def test_retries_end_with_the_window_after_the_event() -> None:
    ended = POLICY.outcome(CLAIM, Answer(503, retry_after=str(24 * 3600)), NOW + 10)
    assert (ended.state, ended.status, ended.error) == ("failed", 503, "retries ended 86400 s after the event")
    timed_out = POLICY.outcome(CLAIM, Answer(error="no answer within 10 s"), NOW + 24 * 3600 - 1)
    assert (timed_out.state, timed_out.error) == (
        "failed", "no answer within 10 s; retries ended 86400 s after the event"
    )


def test_an_address_refused_at_delivery_is_given_up_at_once() -> None:
    refused = POLICY.outcome(CLAIM, Answer(refused="localhost resolves to 127.0.0.1, which is a loopback address"), NOW)
    assert (refused.state, refused.error) == ("failed", "localhost resolves to 127.0.0.1, which is a loopback address")


BODY = b'{"type":"task_postprocess_end","id":"t1","seq":9,"time":1750000000.0,"message":[]}'


def test_our_signature_is_the_one_standard_webhooks_computes_and_verifies() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    theirs = standardwebhooks.Webhook(secret)
    when = datetime.datetime.fromtimestamp(NOW, datetime.UTC)
    assert sign(secret, "msg_t1_9", int(NOW), BODY) == theirs.sign("msg_t1_9", when, BODY)
    headers = {"webhook-id": "msg_t1_9", "webhook-timestamp": str(int(NOW)),
               "webhook-signature": sign(secret, "msg_t1_9", int(NOW), BODY)}
    assert verify_webhook(headers, BODY, secret, now=NOW + 299) == {
        "type": "task_postprocess_end", "id": "t1", "seq": 9, "time": NOW, "message": []
    }
    # and what standardwebhooks signs, ours verifies (header names in any case)
    theirs_headers = {"Webhook-Id": "msg_x", "Webhook-Timestamp": str(int(NOW)),
                      "Webhook-Signature": theirs.sign("msg_x", when, BODY)}
    assert verify_webhook(theirs_headers, BODY, secret, now=NOW)["seq"] == 9


def test_a_webhook_that_is_not_the_server_s_is_refused_with_the_reason() -> None:
    secret, other = new_secret(), new_secret()
    good = {"webhook-id": "msg_t1_9", "webhook-timestamp": str(int(NOW)),
            "webhook-signature": sign(secret, "msg_t1_9", int(NOW), BODY)}
    cases = [
        (good, BODY, other, NOW, "no signature in webhook-signature matches this secret"),
        (good, BODY.replace(b"9", b"8"), secret, NOW, "no signature in webhook-signature matches this secret"),
        ({**good, "webhook-id": "msg_t1_8"}, BODY, secret, NOW, "no signature in webhook-signature matches"),
        (good, BODY, secret, NOW + 301, "webhook-timestamp is 301 s old (at most 300 s)"),
        (good, BODY, secret, NOW - 400, "webhook-timestamp is 400 s ahead (at most 300 s)"),
        ({**good, "webhook-timestamp": "yesterday"}, BODY, secret, NOW, "webhook-timestamp is not Unix seconds"),
        ({k: v for k, v in good.items() if k != "webhook-signature"}, BODY, secret, NOW, "missing webhook-id"),
    ]
    for headers, body, key, now, reason in cases:
        with pytest.raises(WebhookVerificationError, match=re.escape(reason)):
            verify_webhook(headers, body, key, now=now)


def test_while_a_secret_rotates_both_sign_and_either_verifies() -> None:
    now = time.time()  # standardwebhooks checks the timestamp against the clock
    old = WebhookSecrets(new_secret())
    rotated = old.rotated(grace=3600, now=now)
    assert rotated.previous == old.current and rotated.signing(now + 3599) == [rotated.current, old.current]
    assert rotated.signing(now + 3600) == [rotated.current], "the old one stops signing after its grace"
    header = " ".join(sign(s, "msg_t1_9", int(now), BODY) for s in rotated.signing(now))
    headers = {"webhook-id": "msg_t1_9", "webhook-timestamp": str(int(now)), "webhook-signature": header}
    for secret in (old.current, rotated.current):
        assert verify_webhook(headers, BODY, secret)["seq"] == 9
        assert standardwebhooks.Webhook(secret).verify(BODY, headers)["seq"] == 9
    assert verify_webhook(headers, BODY, [new_secret(), rotated.current])["seq"] == 9
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(new_secret()).verify(BODY, headers)
