"""The service's Prometheus metrics: one set per process, in prometheus-client's default registry.

Most of them are derived from the event stream (see `observer.TaskObserver`), so any door a task
came in by is counted the same way; the transports count their own subscribers and sends, and
the step callback times its previews where they happen, on the device thread. Every update is a
counter/gauge/histogram operation of about a microsecond: nothing here is on a path that waits.

The names (all `latentcast_`):

| metric | type | labels | what |
|---|---|---|---|
| queue_length | gauge | | tasks waiting (refreshed from the queue at each scrape) |
| tasks | gauge | status | unfinished tasks in each status, as this process sees the event stream |
| tasks_finished_total | counter | status | tasks that ended: completed, failed, cancelled |
| tasks_submitted_total | counter | | tasks accepted into the queue (their first task_queue) |
| events_total | counter | type | events recorded |
| step_duration_seconds | histogram | | time between consecutive step callbacks (a denoising step and its preview) |
| preview_duration_seconds | histogram | method | computing and encoding one preview, in the step callback |
| task_queue_wait_seconds | histogram | | first task_queue to task_accept |
| task_run_seconds | histogram | status | task_accept to the terminal event |
| subscribers | gauge | transport | open subscriber connections (websocket sockets, sse streams) |
| events_sent_total | counter | transport | events (and control messages) written to subscribers |
| previews_dropped_total | counter | transport | preview images skipped for subscribers that fell behind |
| worker_heartbeats_total | counter | worker | heartbeats this process's workers announced (every `--heartbeat` s) |
| worker_last_heartbeat_timestamp_seconds | gauge | worker | Unix time of a worker's newest heartbeat (with Redis: every live worker's) |
| workers_live | gauge | | workers whose heartbeat is current (with Redis: all of them, anywhere) |
| worker_ready / worker_busy | gauge | worker | a live worker has its model loaded / is running a task |
| worker_events_total | counter | worker | events of the tasks a worker ran (each step is one) |
| worker_last_event_timestamp_seconds | gauge | worker | Unix time of the newest such event: stalls when a device hangs |
| webhook_deliveries_total | counter | outcome | webhook attempts this process made: delivered, retried, given_up |
| webhook_pending | gauge | | webhook deliveries not yet delivered nor given up, everywhere (refreshed at each scrape) |
| webhook_oldest_pending_seconds | gauge | | age of the oldest of them, 0 when there is none (at each scrape) |
"""

from __future__ import annotations

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from latentcast.wire import PREVIEW_METHODS

REGISTRY: CollectorRegistry = DEFAULT_REGISTRY  # with the process_* and python_* collectors

UNFINISHED_STATUSES = ("queued", "accepted", "preprocessing", "running", "postprocessing")
FINAL_STATUSES = ("completed", "failed", "cancelled")
TRANSPORTS = ("websocket", "sse")

# From a tiny model's 1 ms step on a CPU to a big one's tens of seconds.
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PREVIEW_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0)
TASK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)

queue_length = Gauge("latentcast_queue_length", "Tasks waiting in the queue.", registry=REGISTRY)
tasks = Gauge("latentcast_tasks", "Unfinished tasks by status.", ["status"], registry=REGISTRY)
tasks_finished = Counter("latentcast_tasks_finished", "Tasks that ended, by final status.", ["status"], registry=REGISTRY)
tasks_submitted = Counter("latentcast_tasks_submitted", "Tasks accepted into the queue.", registry=REGISTRY)
events = Counter("latentcast_events", "Events recorded, by type.", ["type"], registry=REGISTRY)
step_duration = Histogram(
    "latentcast_step_duration_seconds",
    "Time between consecutive step callbacks of a task: one denoising step and its preview.",
    buckets=STEP_BUCKETS,
    registry=REGISTRY,
)
preview_duration = Histogram(
    "latentcast_preview_duration_seconds",
    "Computing and encoding one preview in the step callback.",
    ["method"],
    buckets=PREVIEW_BUCKETS,
    registry=REGISTRY,
)
task_queue_wait = Histogram(
    "latentcast_task_queue_wait_seconds", "From a task's first task_queue to its task_accept.",
    buckets=TASK_BUCKETS, registry=REGISTRY,
)
task_run = Histogram(
    "latentcast_task_run_seconds", "From task_accept to the terminal event, by final status.",
    ["status"], buckets=TASK_BUCKETS, registry=REGISTRY,
)
subscribers = Gauge("latentcast_subscribers", "Open subscriber connections.", ["transport"], registry=REGISTRY)
events_sent = Counter(
    "latentcast_events_sent", "Messages written to subscribers (events and control messages).", ["transport"],
    registry=REGISTRY,
)
ws_written_at_once = Counter(
    "latentcast_ws_events_written_at_once", "WebSocket events written to the socket as published, past its queue.",
    registry=REGISTRY,
)
previews_dropped = Counter(
    "latentcast_previews_dropped", "Preview images skipped for subscribers that fell behind.", ["transport"],
    registry=REGISTRY,
)
worker_heartbeats = Counter(
    "latentcast_worker_heartbeats", "Heartbeats announced by this process's workers.", ["worker"], registry=REGISTRY
)
worker_last_heartbeat = Gauge(
    "latentcast_worker_last_heartbeat_timestamp_seconds", "Unix time of a worker's newest heartbeat.", ["worker"],
    registry=REGISTRY,
)
workers_live = Gauge("latentcast_workers_live", "Workers whose heartbeat is current.", registry=REGISTRY)
worker_ready = Gauge("latentcast_worker_ready", "1 when a live worker has its model loaded.", ["worker"],
                     registry=REGISTRY)
worker_busy = Gauge("latentcast_worker_busy", "1 while a live worker runs a task.", ["worker"], registry=REGISTRY)
worker_events = Counter(
    "latentcast_worker_events", "Events of the tasks a worker ran (each step is one).", ["worker"], registry=REGISTRY
)
worker_last_event = Gauge(
    "latentcast_worker_last_event_timestamp_seconds", "Unix time of the newest event of a worker's task.", ["worker"],
    registry=REGISTRY,
)
webhook_deliveries = Counter(
    "latentcast_webhook_deliveries", "Webhook attempts, by outcome: delivered, retried, given_up.", ["outcome"],
    registry=REGISTRY,
)
webhook_pending = Gauge(
    "latentcast_webhook_pending", "Webhook deliveries not yet delivered nor given up.", registry=REGISTRY
)
webhook_oldest_pending = Gauge(
    "latentcast_webhook_oldest_pending_seconds", "Age of the oldest pending webhook delivery (0: none).",
    registry=REGISTRY,
)

# Children bound once: the transports' hot paths then cost one locked add, no label lookup.
for _status in UNFINISHED_STATUSES:
    tasks.labels(_status)
for _status in FINAL_STATUSES:
    tasks_finished.labels(_status)
for _outcome in ("delivered", "retried", "given_up"):
    webhook_deliveries.labels(_outcome)
for _method in (method for method in PREVIEW_METHODS if method != "none"):
    preview_duration.labels(_method)
WS_SUBSCRIBERS = subscribers.labels("websocket")
SSE_SUBSCRIBERS = subscribers.labels("sse")
WS_SENT = events_sent.labels("websocket")
SSE_SENT = events_sent.labels("sse")
WS_PREVIEWS_DROPPED = previews_dropped.labels("websocket")
SSE_PREVIEWS_DROPPED = previews_dropped.labels("sse")

_preview_children: dict[str, Histogram] = {}


def observe_preview(method: str, seconds: float) -> None:
    """One preview's duration (compute + encode), as measured in the step callback; called on the
    event loop (a worker's event pump, or the API process's answers to a worker process)."""
    child = _preview_children.get(method)
    if child is None:
        child = _preview_children.setdefault(method, preview_duration.labels(method))
    child.observe(seconds)


class DropCounter:
    """Reports a subscriber queue's `previews_dropped` (a running total) as counter increments."""

    __slots__ = ("child", "reported")

    def __init__(self, child: Counter) -> None:
        self.child = child
        self.reported = 0

    def update(self, queue: object) -> None:
        dropped = getattr(queue, "previews_dropped", 0)
        if dropped > self.reported:
            self.child.inc(dropped - self.reported)
            self.reported = dropped
