"""A real HTTP receiver of webhooks on a loopback port: what the server POSTs, recorded, answered
from a script, the way receivers misbehave included (no answer, an answer that never ends, a
receiver that is not there yet)."""

from __future__ import annotations

import dataclasses
import http.server
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

HANG_UP = 0  # a status that is none: the receiver closes the connection without answering


@dataclasses.dataclass(frozen=True)
class Reply:
    """One scripted answer. `hold`: wait for `release()` before answering (a receiver that has not
    answered yet); `drip`: send the status and headers, then a body a byte at a time until
    `release()` (an answer that never ends)."""

    status: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    hold: bool = False
    drip: bool = False


class Receiver:
    """A little HTTP server on a loopback port (`port`, or a free one) that records each POST and
    answers from a script: each entry a `Reply` or a bare status (HANG_UP: no answer); 200 once
    the script runs out."""

    def __init__(self, script: list[Reply | int] | None = None, *, port: int = 0) -> None:
        self.script = [Reply(entry) if isinstance(entry, int) else entry for entry in script or []]
        self.requests: list[dict[str, Any]] = []
        self.arrived = threading.Condition()
        self.released = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.arrived:
                    reply = receiver.script.pop(0) if receiver.script else Reply()
                    receiver.requests.append(
                        {
                            "path": self.path, "headers": dict(self.headers), "raw": raw, "body": orjson.loads(raw),
                            "status": reply.status, "at": time.time(), "client": self.client_address,
                        }
                    )
                    receiver.arrived.notify_all()
                if reply.hold:
                    receiver.released.wait()
                if reply.status == HANG_UP:
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "1000000" if reply.drip else "0")
                self.end_headers()
                if reply.drip:
                    self.close_connection = True
                    try:
                        while not receiver.released.wait(0.05):
                            self.wfile.write(b"x")
                            self.wfile.flush()
                    except OSError:  # the server stopped reading, and closed its end
                        pass

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 120) -> list[dict[str, Any]]:
        """The requests, once at least `count` have arrived."""
        return self.wait_until(lambda requests: len(requests) >= count, f"{count} request(s)", timeout)

    def wait_until(
        self, holds: Callable[[list[dict[str, Any]]], bool], what: str, timeout: float = 120
    ) -> list[dict[str, Any]]:
        """The requests, once `holds(requests)`."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: holds(self.requests), timeout):
                raise TimeoutError(f"{len(self.requests)} request(s) arrived, still waiting for {what}")
            return list(self.requests)

    def release(self) -> None:
        """Answer every held request, and end every dripping body."""
        self.released.set()

    def close(self) -> None:
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()
