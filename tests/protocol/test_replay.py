import pytest

from latentcast.server.protocol.events import Event
from latentcast.server.protocol.replay import Cursor, Gap


def event(seq: int, type_: str = "task_output") -> Event:
    return Event("t", seq, type_, 0.0, "line")


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
