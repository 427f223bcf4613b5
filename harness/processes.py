"""The real processes tests and benchmarks run against: `latentcast serve`/`worker` and redis-server.

One module for both, so a server under test and a server under measurement
start, report readiness and stop the same way. Only the standard library and httpx: no pytest.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from harness.waiting import until

ROOT = Path(__file__).resolve().parent.parent
# Starting a server on a busy 2-core machine can take long; a ready one answers at once.
READY_TIMEOUT = 240.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers_ok(url: str) -> bool:
    """Whether a GET of `url` answers 200 now (a server still starting refuses or fails it)."""
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def listening(port: int) -> bool:
    """Whether something accepts connections on the loopback `port`."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class ServerProcess:
    """`latentcast serve` (or `worker`) as a user runs it, with its own data dir and port.

    `model`: the `--model` to serve: `builtin:tiny`, the fastest, unless a test needs another; None
    gives none, so the server's default (`builtin:shapes`).
    `python` and `cwd`: another interpreter (an installed wheel's) run outside this checkout.
    `log_dir`: where its log goes, when not in the data dir (a data dir on a disk a test fills).
    """

    def __init__(
        self,
        data_dir: Path,
        *args: str,
        port: int | None = None,
        command: str = "serve",
        model: str | None = "builtin:tiny",
        python: str = sys.executable,
        cwd: Path = ROOT,
        log_dir: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.args = list(args)
        self.port = port or free_port()
        self.command = command
        self.model = model
        self.python = python
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = (log_dir or data_dir) / f"server-{self.port}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server was not started"
        return self.process.pid

    def start(self, wait: bool = True) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [self.python, "-m", "latentcast", self.command, "--port", str(self.port),
                 "--data-dir", str(self.data_dir), *(["--model", self.model] if self.model else []), *self.args],
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT, path: str = "/readyz") -> None:
        """Until `path` answers 200; fails at once, with the log, if the process exits. (A Redis
        front-end without live workers is up, `/healthz`, but not ready.)"""
        until(lambda: self.answers(path), lambda: f"server not ready:\n{self.log()}", timeout, interval=0.1)

    def answers(self, path: str) -> bool:
        """Whether `path` answers 200 now; raises, with the log, if the process has exited."""
        assert self.process is not None, "the server was not started"
        if self.process.poll() is not None:
            raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
        return answers_ok(f"{self.base_url}{path}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def send_signal(self, sig: int) -> None:
        assert self.process is not None, "the server was not started"
        self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the server and wait for it to exit (killed after `timeout`); its exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class RedisServer:
    """A redis-server of its own on a free loopback port, its files in `directory`.

    `durable` (the tests' default): every write is in the append-only file before the answer, so a
    restarted redis-server still has the queue. Benchmarks turn it off to measure Latentcast rather
    than the disk.
    """

    def __init__(self, directory: Path, port: int | None = None, *, durable: bool = True) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        self.directory.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                *persistence, "--save", "", "--maxmemory-policy", "noeviction",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        until(lambda: listening(self.port), f"redis-server listening on port {self.port}", READY_TIMEOUT)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(30)

    def clients(self) -> list[dict[str, str]]:
        """The connections redis-server holds now, as `CLIENT LIST` describes them (addr, name, cmd,
        ...), this one's included."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock, sock.makefile("rb") as reply:
            sock.sendall(b"CLIENT LIST\r\n")
            size = int(reply.readline()[1:])  # a bulk string: "$<bytes>\r\n", then the bytes
            lines = reply.read(size).decode().splitlines()
        return [dict(field.split("=", 1) for field in line.split(" ")) for line in lines if line]


class ConnectionPeaks:
    """The most connections a redis-server listed at once (its own `CLIENT LIST`), per connection
    name and in all, read in a thread every `every` seconds while the `with` block runs. Latentcast
    names its connections `latentcast-HOST-PID`: `of(pid)` is one process's peak."""

    def __init__(self, redis: RedisServer, every: float = 0.02) -> None:
        self.redis = redis
        self.every = every
        self.by_name: collections.Counter[str] = collections.Counter()
        self.total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def of(self, pid: int) -> int:
        return max((n for name, n in self.by_name.items() if name.startswith("latentcast-") and name.endswith(f"-{pid}")), default=0)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while True:
            clients = [c for c in self.redis.clients() if c["cmd"] != "client|list"]  # not the watcher's own
            self.total = max(self.total, len(clients))
            for name, count in collections.Counter(c["name"] for c in clients).items():
                self.by_name[name] = max(self.by_name[name], count)
            if self._stop.wait(self.every):
                return
