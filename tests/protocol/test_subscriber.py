"""The subscriber's state machine, driven directly as its transports drive it (no server, no I/O):
replay and live events meeting without gap or duplicate, flow control, replies, and every way a
subscriber ends, each with the close code and reason its client sees."""

from __future__ import annotations

import pytest

from latentcast.server.protocol.client_messages import Refused
from latentcast.server.protocol.events import EncodedPreview, RecordedEvent
from latentcast.server.protocol.messages import ControlMessage, EventMessage, ServerMessage
from latentcast.server.protocol.subscriber import REPLAY_PAGE, Close, PageRequest, Subscriber


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def socket(*, queue_size: int = 1024, max_subscriptions: int = 100, idle_timeout: float | None = None,
           clock: Clock | None = None) -> Subscriber:
    return Subscriber.socket(
        queue_size=queue_size, max_subscriptions=max_subscriptions, idle_timeout=idle_timeout, clock=clock or Clock()
    )


def stream() -> Subscriber:
    return Subscriber.stream(queue_size=1024, clock=Clock())


def event(task: str, seq: int, kind: str = "task_output", *, image: bool = False) -> RecordedEvent:
    preview = EncodedPreview("jpeg", 8, 8, 64, 64, b"%s-%d" % (task.encode(), seq)) if image else None
    message = {"reason": "done"} if kind == "task_cancel" else {"step": seq}
    return RecordedEvent(task, seq, kind, 1.0, message, preview)


def log_of(task: str, count: int, *, ended: bool = False) -> list[RecordedEvent]:
    """A task's stored log of `count` events, the last one terminal when `ended`."""
    return [event(task, seq, "task_cancel" if ended and seq == count else "task_output") for seq in range(1, count + 1)]


class Client:
    """The transport's part, without I/O: it sends what the subscriber gives, one message at a
    time, and reads the pages it asks for from `logs` (a task's whole stored log so far)."""

    def __init__(self, subscriber: Subscriber, logs: dict[str, list[RecordedEvent]]) -> None:
        self.subscriber = subscriber
        self.logs = logs
        self.received: list[ServerMessage] = []
        self.pages: list[PageRequest] = []

    def read_page(self) -> PageRequest:
        request = self.subscriber.next_page()
        assert request is not None, "no page asked for"
        self._answer(request)
        return request

    def page_asked_for(self) -> PageRequest | None:
        """Send what is ready, then see which page the subscriber asks for (left unread)."""
        self.take()
        return self.subscriber.next_page()

    def _answer(self, request: PageRequest) -> None:
        self.pages.append(request)
        log = self.logs.get(request.task_id, [])
        self.subscriber.page_read([e for e in log if e.seq > request.after][: request.limit])

    def take(self, count: int | None = None) -> list[ServerMessage]:
        """Send up to `count` messages (all that are ready), reading no page."""
        taken: list[ServerMessage] = []
        while count is None or len(taken) < count:
            message = self.subscriber.next_message()
            if message is None:
                break
            self.subscriber.message_sent()
            taken.append(message)
        self.received += taken
        return taken

    def run(self) -> list[ServerMessage]:
        """Everything there is to send, with every page it takes, as a loop does until it would wait."""
        start = len(self.received)
        while True:
            self.take()
            request = self.subscriber.next_page()
            if request is None:
                return self.received[start:]
            self._answer(request)


def following(
    log: list[RecordedEvent], since: int = 0, previews: str = "none", subscriber: Subscriber | None = None
) -> tuple[Subscriber, Client]:
    """A subscriber (a socket unless one is given) following task "a", whose stored log is `log`."""
    subscriber = subscriber or socket()
    subscriber.follow("a", since, previews)
    return subscriber, Client(subscriber, {"a": log})


def seqs(messages: list[ServerMessage], task: str | None = None) -> list[int]:
    return [m.event.seq for m in messages if isinstance(m, EventMessage) and task in (None, m.event.task_id)]


def controls(messages: list[ServerMessage]) -> list[dict]:
    return [m.body for m in messages if isinstance(m, ControlMessage)]


# -- replay and live ------------------------------------------------------------------------------


def test_replay_comes_a_page_at_a_time_then_live_events_follow_with_no_gap_and_no_duplicate():
    log = log_of("a", 3 * REPLAY_PAGE)
    subscriber, client = following(log, 5, "binary")
    assert controls(client.take()) == [{"type": "subscribed", "id": "a", "since": 5}]
    # a page only once everything before it was sent: the replay goes at the client's pace
    first = client.read_page()
    assert first == PageRequest("a", 5, REPLAY_PAGE)
    assert subscriber.next_page() is None  # its events are still to send
    assert seqs(client.take()) == list(range(6, 6 + REPLAY_PAGE))
    # live events meanwhile: more than a page of them, recorded before they were published
    for seq in range(len(log) + 1, len(log) + REPLAY_PAGE + 11):
        log.append(event("a", seq))
        subscriber.live(log[-1])
    assert client.take() == []  # held back: the log comes first
    client.run()
    last = event("a", len(log) + 1, "task_cancel")
    log.append(last)
    subscriber.live(last)
    (terminal,) = client.take()
    assert seqs(client.received) == list(range(6, last.seq + 1))  # every event once, in order, across the seam
    assert isinstance(terminal, EventMessage) and terminal.event is last  # caught up: it came live
    assert not subscriber.following("a") and subscriber.next_page() is None
    assert all(request.limit == REPLAY_PAGE for request in client.pages)


def test_live_events_published_before_the_first_page_are_not_sent_twice():
    log = log_of("a", 4)
    subscriber, client = following(log)
    for e in log[2:]:  # 3 and 4 were recorded and published while the first page was being read
        subscriber.live(e)
    client.run()
    assert seqs(client.received) == [1, 2, 3, 4]


def test_a_hole_in_the_live_events_sends_the_subscription_back_to_the_log():
    log = log_of("a", 1)
    subscriber, client = following(log)
    client.run()
    assert seqs(client.received) == [1]
    log += [event("a", 2), event("a", 3)]
    subscriber.live(log[2])  # 2's live copy was lost (it was published by another process)
    assert client.take() == [] and subscriber.has_work()
    log.append(event("a", 4, "task_cancel"))
    subscriber.live(log[3])  # waits with 3 meanwhile
    assert client.read_page() == PageRequest("a", 1, REPLAY_PAGE)
    client.run()
    assert seqs(client.received) == [1, 2, 3, 4] and not subscriber.following("a")


def test_exactly_one_terminal_event_and_nothing_after_it():
    log = log_of("a", 3, ended=True)
    subscriber, client = following(log)
    subscriber.live(log[2])  # the terminal event, live and in the log
    client.run()
    subscriber.live(log[2])  # published twice (a bus that redelivers)
    subscriber.live(event("a", 4))  # nothing follows a terminal event
    assert client.take() == []
    assert [m.event.type for m in client.received if isinstance(m, EventMessage)] == [
        "task_output", "task_output", "task_cancel"
    ]


def test_since_beyond_the_end_sends_nothing_and_does_not_fail():
    log = log_of("a", 10, ended=True)
    subscriber, client = following(log, 50, "binary")
    client.run()
    subscriber.live(log[-1])
    client.run()
    assert [type(m) for m in client.received] == [ControlMessage]
    assert subscriber.close is None


def test_a_page_read_while_the_client_subscribed_again_is_dropped():
    log = log_of("a", 10)
    subscriber, client = following(log)
    assert client.page_asked_for() == PageRequest("a", 0, REPLAY_PAGE)
    subscriber.follow("a", 7, "none")  # while that page was being read
    subscriber.page_read(log)  # the page from 0 arrives: it is of no use to the new subscription
    client.run()
    assert seqs(client.received) == [8, 9, 10]
    assert [c["since"] for c in controls(client.received)] == [0, 7]  # both `subscribed`


def test_an_event_published_while_the_last_page_was_read_follows_it():
    log = log_of("a", 2)
    subscriber, client = following(log)
    assert client.page_asked_for() == PageRequest("a", 0, REPLAY_PAGE)
    page = list(log)  # the read left the store with 1 and 2
    log.append(event("a", 3))
    subscriber.live(log[-1])  # recorded and published before the read came back
    subscriber.page_read(page)
    assert seqs(client.take()) == [1, 2, 3]
    assert subscriber.next_page() is None  # caught up: live from here


def test_one_message_and_one_page_at_a_time():
    subscriber = socket()
    subscriber.follow("a", 0, "none")
    subscriber.refuse(Refused("not_found", "no task 'b'"), "b")
    subscribed = subscriber.next_message()
    assert isinstance(subscribed, ControlMessage)
    assert subscriber.next_message() is None and subscriber.next_page() is None  # a send in progress
    assert not subscriber.has_work()  # (its sender is busy: nothing to wake it for)
    subscriber.message_sent()
    assert controls([subscriber.next_message()])[0]["type"] == "error"
    subscriber.message_sent()
    assert subscriber.next_page() == PageRequest("a", 0, REPLAY_PAGE)
    assert subscriber.next_page() is None  # a read in progress
    subscriber.page_read([event("a", 1)])
    assert seqs([subscriber.next_message()]) == [1]


# -- flow control ---------------------------------------------------------------------------------


def test_a_slow_client_loses_only_older_preview_images_and_keeps_the_newest():
    subscriber, client = following([], 0, "binary")
    client.run()
    steps = [event("a", seq, "task_progress", image=True) for seq in range(1, 6)]
    lifecycle = event("a", 6, "task_postprocess_start")
    for e in [*steps, lifecycle]:  # the client reads nothing meanwhile
        subscriber.live(e)
    sent = [m for m in client.take() if isinstance(m, EventMessage)]
    assert [m.event.seq for m in sent] == [1, 2, 3, 4, 5, 6]  # no event dropped: seq stays gapless
    assert [m.event.preview is not None for m in sent] == [False, False, False, False, True, False]
    assert [m.event.message for m in sent[:5]] == [e.message for e in steps]  # only the images went
    assert subscriber.previews_dropped == 4


def test_a_client_that_does_not_read_is_closed_as_too_slow_and_sent_nothing_more():
    subscriber, client = following([], 0, "none", socket(queue_size=3))
    client.run()
    for seq in range(1, 5):
        subscriber.live(event("a", seq))
    assert subscriber.close == Close(1013, "too slow: resubscribe with since to resume")
    assert client.take() == [] and subscriber.has_work()


def test_a_burst_of_subscribes_is_not_a_slow_client():
    subscriber = socket(queue_size=3)
    client = Client(subscriber, {})
    for index in range(100):  # read in one go, before the sender had a turn
        subscriber.follow(str(index), 0, "none")
    assert subscriber.close is None
    assert len(controls(client.take())) == 100


def test_replayed_events_do_not_make_a_client_too_slow():
    log = log_of("a", REPLAY_PAGE)
    subscriber, client = following(log, 0, "none", socket(queue_size=3))
    client.take()
    client.read_page()  # a whole page queued at once
    assert subscriber.close is None
    assert seqs(client.take()) == list(range(1, REPLAY_PAGE + 1))


def test_previews_none_sends_events_bare_and_counts_no_drop():
    subscriber, client = following([])
    client.run()
    for seq in (1, 2):
        subscriber.live(event("a", seq, "task_progress", image=True))
    sent = [m for m in client.take() if isinstance(m, EventMessage)]
    assert [(m.event.preview, m.previews) for m in sent] == [(None, "none"), (None, "none")]
    assert subscriber.previews_dropped == 0


# -- subscriptions and replies --------------------------------------------------------------------


def test_subscribed_comes_before_the_events_and_unsubscribed_after_those_already_queued():
    subscriber, client = following(log_of("a", 2), 0, "json")
    client.run()
    subscriber.live(event("a", 3))
    subscriber.unfollow("a")
    subscriber.live(event("a", 4))  # after the unsubscribe: not sent
    client.take()
    kinds = [m.body["type"] if isinstance(m, ControlMessage) else m.event.seq for m in client.received]
    assert kinds == ["subscribed", 1, 2, 3, "unsubscribed"]
    with pytest.raises(Refused) as refused:
        subscriber.unfollow("a")
    assert (refused.value.code, refused.value.message) == ("not_subscribed", "not subscribed to 'a'")


def test_a_refused_message_is_answered_with_an_error_naming_it():
    subscriber = socket()
    subscriber.refuse(Refused("not_found", "no task 'x'"), "x")
    assert controls(Client(subscriber, {}).take()) == [
        {"type": "error", "code": "not_found", "message": "no task 'x'", "id": "x"}
    ]


def test_ended_subscriptions_and_a_subscription_again_take_no_room():
    subscriber, client = following(log_of("a", 1, ended=True), 0, "none", socket(max_subscriptions=2))
    subscriber.follow("b", 0, "none")
    subscriber.follow("b", 3, "none")  # again: replaces, takes no more room
    with pytest.raises(Refused) as refused:
        subscriber.follow("c", 0, "none")
    assert refused.value.code == "too_many_subscriptions"
    assert "at most 2 tasks" in refused.value.message
    client.run()  # a's log ends it: its room is free again
    assert not subscriber.following("a")
    subscriber.follow("c", 0, "none")
    with pytest.raises(Refused):
        subscriber.follow_all("none")


def test_subscribe_all_gets_every_task_and_a_followed_task_once_in_its_own_mode():
    subscriber = socket()
    client = Client(subscriber, {"a": []})
    subscriber.follow_all("none")
    subscriber.follow("a", 0, "json")
    client.run()
    step = event("a", 1, "task_progress", image=True)
    other = event("b", 7, "task_progress", image=True)
    for e in (step, step, other):  # a's event reaches both listeners: its own and subscribe_all's
        subscriber.live(e)
    sent = [m for m in client.take() if isinstance(m, EventMessage)]
    assert [(m.event.task_id, m.event.seq, m.previews) for m in sent] == [("a", 1, "json"), ("b", 7, "none")]
    assert sent[0].event.preview is not None and sent[1].event.preview is None
    assert controls(client.received)[0] == {"type": "subscribed", "id": "*", "since": None}


# -- how a subscriber ends ------------------------------------------------------------------------


def test_a_stream_ends_once_its_terminal_event_is_sent_and_has_no_replies():
    log = log_of("a", 3, ended=True)
    subscriber, client = following(log, 1, "json", stream())
    client.take()
    client.read_page()
    assert seqs(client.take(1)) == [2] and subscriber.close is None
    (terminal,) = client.take(1)
    assert isinstance(terminal, EventMessage) and terminal.event.terminal
    assert subscriber.close == Close(1000, "the task ended")
    assert controls(client.received) == []


def test_a_socket_stays_open_after_a_task_ends():
    subscriber, client = following(log_of("a", 2, ended=True))
    client.run()
    assert seqs(client.received) == [1, 2] and subscriber.close is None


def test_a_revoked_key_closes_with_1008_and_nothing_queued_is_sent():
    subscriber, client = following([])
    client.run()
    subscriber.live(event("a", 1))
    subscriber.key_revoked()
    assert subscriber.close == Close(1008, "API key revoked")
    assert client.take() == [] and subscriber.next_page() is None and subscriber.has_work()


def test_a_store_that_cannot_be_read_now_closes_with_1013_to_resume_later():
    subscriber, client = following([])
    client.take()
    assert subscriber.next_page() is not None
    subscriber.page_unavailable()
    # (an SSE stream just ends: no failure to tell)
    assert subscriber.close == Close(1013, "replay unavailable: resubscribe with since to resume")


def test_a_log_that_cannot_be_read_back_closes_with_1011_and_a_stream_error():
    subscriber = stream()
    subscriber.follow("a", 0, "json")
    assert subscriber.next_page() is not None
    subscriber.page_failed("undecodable event 3")
    assert subscriber.close == Close(1011, "replay of task a failed: undecodable event 3", "replay_failed")


def test_a_hole_in_the_stored_log_closes_with_1011_naming_it():
    subscriber, client = following([event("a", 1), event("a", 3)])
    client.run()
    assert subscriber.close == Close(1011, "replay of task a failed: expected seq 2, got 3", "replay_failed")
    assert seqs(client.received) == []  # what came before the hole was queued, but a closing socket gets nothing


def test_a_send_that_times_out_closes_with_1013():
    subscriber = socket()
    subscriber.send_timed_out()
    assert subscriber.close == Close(1013, "send timed out")


def test_the_first_reason_to_close_is_the_one_given():
    subscriber = socket()
    subscriber.key_revoked()
    subscriber.send_timed_out()
    assert subscriber.close == Close(1008, "API key revoked")


def test_a_socket_that_follows_nothing_is_closed_after_the_idle_timeout():
    clock = Clock()
    subscriber = socket(idle_timeout=1.5, clock=clock)
    client = Client(subscriber, {"a": []})
    assert subscriber.timer() == 1001.5  # from the start
    clock.now = 1001.0
    subscriber.follow("a", 0, "none")
    assert subscriber.timer() is None  # following a task
    clock.now = 1100.0
    subscriber.handle_timer()
    assert subscriber.close is None
    client.run()
    subscriber.unfollow("a")
    assert subscriber.timer() == 1101.5  # from the end of its last subscription
    clock.now = 1101.4
    subscriber.handle_timer()
    assert subscriber.close is None
    clock.now = 1101.5
    subscriber.handle_timer()
    assert subscriber.close == Close(1000, "idle: no subscription for 1.5 s")
    assert subscriber.timer() is None


def test_a_task_that_ends_starts_the_idle_time():
    clock = Clock()
    subscriber = socket(idle_timeout=300, clock=clock)
    subscriber.follow("a", 0, "none")
    client = Client(subscriber, {"a": []})
    client.run()
    clock.now = 1200.0
    subscriber.live(event("a", 1, "task_cancel"))
    assert subscriber.timer() == 1500.0
