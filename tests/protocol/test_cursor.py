"""The seq cursor (`wire.Cursor`): the server's replay join and the client's resume both use it."""

import pytest

from latentcast.client.events import event_from_frame
from latentcast.server.protocol.events import RecordedEvent
from latentcast.wire import Cursor, Gap


def event(seq: int, type_: str = "task_output") -> RecordedEvent:
    return RecordedEvent("t", seq, type_, 0.0, "line")


def test_cursor_passes_each_seq_once_in_order():
    cursor = Cursor(last=2)
    assert not cursor.admit(event(1))
    assert not cursor.admit(event(2))
    assert cursor.admit(event(3))
    assert not cursor.admit(event(3))
    assert cursor.admit(event(4))
    assert cursor.last == 4


def test_cursor_reports_a_hole():
    cursor = Cursor(last=1)
    with pytest.raises(Gap) as hole:
        cursor.admit(event(3))
    assert (hole.value.expected, hole.value.got) == (2, 3)
    assert cursor.last == 1


def test_cursor_stops_after_the_terminal_event():
    cursor = Cursor()
    assert cursor.admit(event(1))
    assert cursor.admit(event(2, "task_cancel"))
    assert cursor.done
    assert not cursor.admit(event(3))


def test_the_clients_typed_events_go_through_the_same_cursor():
    cursor = Cursor(last=4)
    fatal = event_from_frame('{"type":"task_error","id":"t","seq":5,"time":0,"message":{"code":"oom","fatal":true}}')
    assert cursor.admit(fatal) and cursor.done
