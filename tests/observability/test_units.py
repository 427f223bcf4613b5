"""The observability pieces without a server: the event observer, drop counting, logs, the console bar."""

from __future__ import annotations

import io
import logging

import orjson
import pytest

from latentcast.server.observability import metrics
from latentcast.server.observability.console import ConsoleHandler, ConsoleProgress
from latentcast.server.observability.logs import JSONFormatter, configure_logging, redact
from latentcast.server.observability.observer import TaskObserver
from latentcast.server.protocol.events import EncodedPreview, RecordedEvent
from latentcast.server.protocol.flow import OutboundQueue
from latentcast.server.protocol.messages import EventMessage


def events_of_a_task(task: str, steps: int = 3, start: float = 1000.0) -> list[RecordedEvent]:
    types = [
        ("task_queue", {"position": 1, "queue_length": 1}),
        ("task_accept", {"worker": "w-0", "attempt": 1}),
        ("task_preprocess_start", {}),
        ("task_preprocess_end", {"seconds": 0.01}),
        ("task_assign", {"device": "cpu"}),
        ("task_start", {"steps": steps, "seed": 1, "width": 64, "height": 64, "images": 1}),
        *[("task_progress", {"step": i, "steps": steps, "percent": 0, "eta_seconds": 0, "it_per_s": 10.0})
          for i in range(1, steps + 1)],
        ("task_output_full", "log"),
        ("task_end", {"seconds": 0.3}),
        ("task_postprocess_start", {}),
        ("task_postprocess_end", []),
    ]
    return [
        RecordedEvent(task, seq, type_, start + 0.1 * seq, message) for seq, (type_, message) in enumerate(types, 1)
    ]


def gauge(status: str) -> float:
    return metrics.tasks.labels(status)._value.get()


def counter(child) -> float:
    return child._value.get()


def test_observer_moves_statuses_and_forgets_finished_tasks(caplog):
    observer = TaskObserver()
    completed = counter(metrics.tasks_finished.labels("completed"))
    steps = metrics.step_duration._sum.get()
    events = events_of_a_task("a" * 16)
    running_before = gauge("running")
    with caplog.at_level(logging.INFO, logger="latentcast.task"):
        for event in events[:7]:
            observer.on_event(event)
        assert gauge("running") == running_before + 1
        assert observer.tracked == 1
        for event in events[7:]:
            observer.on_event(event)
    assert gauge("running") == running_before
    assert observer.tracked == 0
    assert counter(metrics.tasks_finished.labels("completed")) == completed + 1
    assert metrics.step_duration._sum.get() == pytest.approx(steps + 0.2)  # two intervals of 0.1 s
    lines = [r for r in caplog.records if r.name == "latentcast.task"]
    assert [r.status for r in lines] == ["queued", "accepted", "preprocessing", "running", "postprocessing", "completed"]
    assert all(r.task == "a" * 16 for r in lines)
    assert lines[-1].previous == "postprocessing" and lines[-1].worker == "w-0"


def test_observer_seeds_unfinished_tasks_after_a_restart():
    class Record:
        def __init__(self, id_: str, status: str) -> None:
            self.id, self.status, self.worker = id_, status, None

    observer = TaskObserver(log_status=False)
    queued = gauge("queued")
    observer.seed([Record("b" * 16, "queued"), Record("c" * 16, "queued"), Record("d" * 16, "completed")])
    assert gauge("queued") == queued + 2
    observer.on_event(RecordedEvent("b" * 16, 5, "task_cancel", 1.0, {"reason": "x"}))
    assert gauge("queued") == queued + 1
    observer.on_event(RecordedEvent("c" * 16, 5, "task_cancel", 1.0, {"reason": "x"}))
    assert gauge("queued") == queued and observer.tracked == 0


def test_a_broken_event_is_logged_and_never_escapes_the_listener(caplog):
    """A metrics bug must not break publishing to subscribers: the observer logs it and goes on."""
    observer = TaskObserver(log_status=False)
    broken = RecordedEvent("e" * 16, 1, "task_queue", 1.0, {"position": 1, "queue_length": "many"})  # not a number
    queued = gauge("queued")
    with caplog.at_level(logging.ERROR, logger="latentcast.task"):
        observer.on_event(broken)
    (record,) = [r for r in caplog.records if r.name == "latentcast.task"]
    assert record.getMessage() == f"metrics: could not observe event task_queue of task {'e' * 16}"
    assert record.exc_info is not None and record.exc_info[0] is ValueError
    observer.on_event(RecordedEvent("f" * 16, 1, "task_queue", 1.0, {"position": 1, "queue_length": 1}))
    assert gauge("queued") == queued + 1  # the next event is observed as ever
    observer.on_event(RecordedEvent("f" * 16, 2, "task_cancel", 1.1, {"reason": "x"}))


def test_drop_counter_reports_previews_dropped_for_a_slow_subscriber():
    queue = OutboundQueue(16)
    dropped = metrics.DropCounter(metrics.WS_PREVIEWS_DROPPED)
    start = counter(metrics.WS_PREVIEWS_DROPPED)
    image = EncodedPreview("jpeg", 8, 8, 64, 64, b"x")
    for seq in range(1, 4):
        queue.push(EventMessage(RecordedEvent("f" * 16, seq, "task_progress", 1.0, {}, image), "binary"))
    dropped.update(queue)
    dropped.update(queue)  # idempotent: only new drops count
    assert counter(metrics.WS_PREVIEWS_DROPPED) == start + 2


def test_json_logs_carry_fields_and_never_secrets():
    formatter = JSONFormatter()
    record = logging.LogRecord("latentcast.task", logging.INFO, __file__, 1, "task %s running", ("abc",), None)
    record.task, record.status, record.token = "abc", "running", "s3cret-token-value"
    line = orjson.loads(formatter.format(record))
    assert line["message"] == "task abc running" and line["task"] == "abc" and line["status"] == "running"
    assert line["level"] == "info" and line["logger"] == "latentcast.task" and "time" in line
    assert line["token"] == "***"
    assert "s3cret" not in formatter.format(
        logging.LogRecord("x", logging.INFO, __file__, 1, "GET /t/1?token=s3cret-value&x=1", (), None)
    )


def test_redact_masks_tokens_keys_and_bearer_credentials():
    assert redact("GET /t/abc?token=AbCdEf123456") == "GET /t/abc?token=***"
    assert redact('{"tasktoken": "AbCdEf123456"}') == '{"tasktoken": "***"}'
    assert redact("Authorization: Bearer lc_abcdefghijkl") == "Authorization: Bearer ***"
    assert redact("sent bearer lc_abcdefghijkl to it") == "sent bearer *** to it"
    assert redact("x-api-key=lc_abcdefghijkl") == "x-api-key=***"
    assert redact("task 9f2c4e1a0b3d5e7f running on cpu-0") == "task 9f2c4e1a0b3d5e7f running on cpu-0"
    # a query string keeps its names only, whatever they are; key-shaped words go wherever they are
    key = "lc_" + "k" * 43
    assert redact(f'"WebSocket /v1/ws?key={key}&t=tok&secret=s3" 401') == '"WebSocket /v1/ws?key=***&t=***&secret=***" 401'
    assert redact("see /t/abc?t=AbCdEf123456, then") == "see /t/abc?t=***, then"
    assert redact(f"GET /x?{key} and lcs_{'s' * 32}") == "GET /x?lc_*** and lcs_***"
    assert redact("is it? yes") == "is it? yes"


def test_configure_logging_json_sends_every_logger_as_json():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        assert configure_logging("json", progress=True, stream=stream) is None  # no bar in JSON mode
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 1)
        logging.getLogger("latentcast.task").info("task x queued", extra={"task": "x", "status": "queued"})
        lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
        assert [line["logger"] for line in lines] == ["uvicorn.error", "latentcast.task"]
        with pytest.raises(ValueError):
            configure_logging("xml")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_console_bar_draws_steps_and_keeps_out_of_the_log_lines():
    stream = io.StringIO()
    bar = ConsoleProgress(stream, min_interval=0)
    events = events_of_a_task("9" * 16, steps=4)
    for event in events[:8]:  # up to step 2 of 4
        bar.on_event(event)
    assert "9999999999999999 [" in stream.getvalue() and "2/4" in stream.getvalue() and "10.0 it/s" in stream.getvalue()
    handler = ConsoleHandler(stream, bar)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.emit(logging.LogRecord("x", logging.INFO, __file__, 1, "a log line", (), None))
    tail = stream.getvalue().rsplit("a log line", 1)
    assert tail[0].endswith("\r\x1b[K")  # the bar was lifted before the line ...
    assert "2/4" in tail[1]  # ... and drawn again below it
    for event in events[8:]:
        bar.on_event(event)
    assert stream.getvalue().endswith("\r\x1b[K")  # the task ended: the bar is gone
    assert bar.line() == ""


def test_configure_logging_text_with_progress_returns_the_bar():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        bar = configure_logging("text", progress=True, stream=stream)
        assert isinstance(bar, ConsoleProgress)
        assert configure_logging("text", progress=False, stream=stream) is None
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
