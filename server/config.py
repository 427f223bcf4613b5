"""Server settings: one frozen object built from the command line, passed to everything that needs it."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from latentcast.server.tasks.catalog import DEFAULT_ALIASES, DEFAULT_MODEL
from latentcast.server.tasks.params import Limits


def default_data_dir() -> Path:
    return Path(os.environ.get("LATENTCAST_DATA", Path.home() / ".latentcast"))


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = dataclasses.field(default_factory=default_data_dir)
    public_url: str | None = None
    # where tasks live: None = this process (SQLite + memory queue); redis://... = shared
    broker: str | None = None
    redis_prefix: str = "lc"
    retention: float = 7 * 24 * 3600  # seconds ended tasks are kept (Redis: key expiry; SQLite: a sweep)
    visibility_timeout: float = 30.0  # seconds a silent worker keeps its job before another takes it
    heartbeat_seconds: float = 2.0
    # Redis connections one process opens at most, and seconds a command waits for one when all are
    # in use (docs/scale-out.md); a worker's job read and the feed and cancel listeners hold one each
    redis_pool_size: int = 50
    redis_pool_timeout: float = 10.0
    outputs_dir: Path | None = None  # Redis mode: a shared folder for outputs instead of Redis
    # the engine
    model: str = DEFAULT_MODEL
    model_aliases: tuple[str, ...] = DEFAULT_ALIASES
    device: str = "cpu"
    dtype: str | None = None
    workers: int = 1
    # False: each worker in a process of its own (docs/process-model.md); True: threads of the API
    # process, sharing its interpreter lock with the fan-out (what a benchmark compares against)
    worker_threads: bool = False
    worker_name: str | None = None
    taesd: Path | None = None
    preview_min_interval: float = 0.1
    shutdown_grace: float = 5.0
    # clients and limits
    limits: Limits = dataclasses.field(default_factory=Limits)
    max_queue: int = 1000
    subscriber_queue: int = 1024
    send_timeout: float = 10.0
    compat_wait: float = 900.0  # seconds a provider's synchronous endpoint waits for its task
    # webhooks (docs/webhooks.md). True: they may go to loopback, private and other inward addresses
    webhook_allow_private: bool = False
    webhook_timeout: float = 10.0  # seconds one attempt may take, from connecting to the answer's status
    webhook_first_retry: float = 5.0  # seconds before the first retry; each next waits about twice as long
    webhook_max_retry_delay: float = 3600.0  # the longest wait between two attempts
    webhook_retry_for: float = 24 * 3600.0  # seconds after its event a delivery is still retried
    webhook_per_host: int = 4  # deliveries in flight to one receiver (host:port) per front-end
    # hostile clients (docs/security.md, "Limits and hostile input"); a rate or timeout of 0 is off
    max_body_bytes: int = 1024 * 1024
    min_body_rate: float = 1024.0  # bytes/s a body must average, after header_timeout seconds
    header_timeout: float = 10.0  # seconds for a request's line and headers
    rate_per_minute: int = 0  # API requests per caller (an API key, else an address)
    max_in_flight: int = 0  # queued or running tasks per caller
    max_subscriptions: int = 100  # live task subscriptions per socket
    ws_idle_timeout: float = 300.0  # seconds a socket may follow nothing before it is closed
    ws_max_message_bytes: int = 1024 * 1024
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    # browser pages of these origins may call the API, open sockets and frame /embed ("*": any)
    cors_origins: tuple[str, ...] = ()
    log_format: str = "text"

    @property
    def base_url(self) -> str:
        """Where clients reach the API; "" (a worker not told) makes output URLs relative."""
        return self.public_url if self.public_url is not None else f"http://{self.host}:{self.port}"

    @property
    def silence_limit(self) -> float:
        """How long a worker may go without a heartbeat before it counts as gone from
        `/v1/workers` and /readyz: three beats missed, never under 5 s, so one slow beat is not an
        outage. (Its task is taken from it later, after `visibility_timeout`.)"""
        return max(3 * self.heartbeat_seconds, 5.0)

    @property
    def database(self) -> Path:
        return self.data_dir / "latentcast.db"

    @property
    def outputs(self) -> Path:
        return self.data_dir / "outputs"
