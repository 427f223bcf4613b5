from latentcast.server.protocol.events import EncodedPreview, RecordedEvent
from latentcast.server.protocol.flow import OutboundQueue
from latentcast.server.protocol.messages import ControlMessage, EventMessage, ServerMessage


def progress(task: str, seq: int, image: bool = True) -> EventMessage:
    preview = EncodedPreview("jpeg", 8, 8, 64, 64, f"{task}{seq}".encode()) if image else None
    return EventMessage(RecordedEvent(task, seq, "task_progress", 0.0, {"step": seq}, preview), "binary")


def lifecycle(task: str, seq: int) -> EventMessage:
    return EventMessage(RecordedEvent(task, seq, "task_output", 0.0, f"Step {seq}"), "binary")


def drain(queue: OutboundQueue) -> list[ServerMessage]:
    return [queue.pop() for _ in range(len(queue))]


def events(queue: OutboundQueue) -> list[RecordedEvent]:
    messages = drain(queue)
    assert all(isinstance(m, EventMessage) for m in messages)
    return [m.event for m in messages]  # type: ignore[union-attr]


def test_only_the_newest_unsent_preview_keeps_its_image_and_no_event_is_dropped():
    queue = OutboundQueue(maxlen=100)
    for seq in range(1, 7):
        queue.push(progress("a", seq) if seq % 2 else lifecycle("a", seq))
    sent = events(queue)
    assert [e.seq for e in sent] == [1, 2, 3, 4, 5, 6]
    assert [e.preview is not None for e in sent] == [False, False, False, False, True, False]
    assert queue.previews_dropped == 2


def test_latest_wins_is_per_task():
    queue = OutboundQueue(maxlen=100)
    queue.push(progress("a", 1))
    queue.push(progress("b", 1))
    assert all(e.preview is not None for e in events(queue))


def test_a_sent_preview_is_not_touched_by_a_newer_one():
    queue = OutboundQueue(maxlen=100)
    queue.push(progress("a", 1))
    first = queue.pop()
    queue.push(progress("a", 2))
    assert isinstance(first, EventMessage) and first.event.preview is not None
    assert events(queue)[0].preview is not None


def test_a_stripped_event_keeps_its_delivery_mode():
    queue = OutboundQueue(maxlen=100)
    queue.push(EventMessage(progress("a", 1).event, "json"))
    queue.push(progress("a", 2))
    first, second = drain(queue)
    assert isinstance(first, EventMessage) and (first.event.preview, first.previews) == (None, "json")
    assert isinstance(second, EventMessage) and second.event.preview is not None


def test_replies_to_a_burst_of_requests_do_not_count_against_the_bound():
    queue = OutboundQueue(maxlen=3)
    for index in range(100):  # a hundred subscribes, read in one go before anything was sent
        queue.push(ControlMessage({"type": "subscribed", "id": str(index), "since": 0}), paced=True)
    assert not queue.overflowed


def test_control_messages_keep_their_place_and_are_never_dropped():
    queue = OutboundQueue(maxlen=100)
    queue.push(ControlMessage({"type": "subscribed", "id": "a", "since": 0}))
    queue.push(progress("a", 1))
    queue.push(ControlMessage({"type": "unsubscribed", "id": "a"}))
    queue.push(progress("a", 2))
    kinds = [m.body["type"] if isinstance(m, ControlMessage) else m.event.seq for m in drain(queue)]
    assert kinds == ["subscribed", 1, "unsubscribed", 2]


def test_overflow_is_reported_not_hidden():
    queue = OutboundQueue(maxlen=3)
    for seq in range(1, 4):
        queue.push(lifecycle("a", seq))
    assert not queue.overflowed
    queue.push(lifecycle("a", 4))
    assert queue.overflowed
    assert [e.seq for e in events(queue)] == [1, 2, 3, 4]


def test_replayed_events_do_not_count_against_the_bound():
    queue = OutboundQueue(maxlen=3)
    for seq in range(1, 101):  # a replay page, read because the client drained the last one
        queue.push(lifecycle("a", seq), paced=True)
    for seq in range(1, 4):
        queue.push(lifecycle("b", seq))
    assert not queue.overflowed
    queue.push(lifecycle("b", 4))
    assert queue.overflowed  # live events piling up beyond the bound still close a slow client
    sent = events(queue)
    assert [(e.task_id, e.seq) for e in sent] == [("a", s) for s in range(1, 101)] + [("b", s) for s in range(1, 5)]
    assert not queue.overflowed


def test_a_replayed_preview_is_latest_wins_with_live_ones():
    queue = OutboundQueue(maxlen=3)
    queue.push(progress("a", 1), paced=True)
    queue.push(progress("a", 2))
    assert [e.preview is not None for e in events(queue)] == [False, True]
