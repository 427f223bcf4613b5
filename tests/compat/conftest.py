"""Fixtures of the compatibility tests: servers set up for one provider case, and a real HTTP
receiver for Wiro's callbackUrl."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from latentcast.server.tasks.catalog import SD3_MEDIUM_ALIASES
from tests.support import ServerProcess


class Receiver:
    """A little HTTP server on a loopback port that records each POST and answers from a script."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses  # the status of each answer in turn; 200 once they run out
        self.requests: list[dict[str, Any]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.arrived:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": orjson.loads(body), "status": status}
                    )
                    receiver.arrived.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 120) -> list[dict[str, Any]]:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"{len(self.requests)} callback(s) arrived, expected {count}")
            return list(self.requests)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Callable[[list[int]], Receiver]]:
    made: list[Receiver] = []

    def make(statuses: list[int]) -> Receiver:
        made.append(Receiver(list(statuses)))
        return made[-1]

    yield make
    for one in made:
        one.close()


def _server(factory: pytest.TempPathFactory, name: str, *args: str) -> Iterator[ServerProcess]:
    process = ServerProcess(factory.mktemp(name), "--preview-min-interval", "0", *args).start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def full_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose queue is always full (--max-queue 0): every submit is refused with 429."""
    yield from _server(tmp_path_factory, "full", "--max-queue", "0")


@pytest.fixture(scope="session")
def aliased_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose model also answers to the providers' other model names. The page examples run
    on it, once (they are the slow tests; every other test runs on both backends of `server`)."""
    names = [*SD3_MEDIUM_ALIASES, "stable-diffusion-v35-large", "sd3-large", "sd3-large-turbo"]
    yield from _server(tmp_path_factory, "aliased", *(arg for name in names for arg in ("--model-alias", name)))


@pytest.fixture(scope="session")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose model answers to none of the providers' model names."""
    yield from _server(tmp_path_factory, "bare", "--model-alias", "house-model")
