"""A real HTTP receiver for Wiro's callbackUrl: what the server POSTs, recorded, answered from a script."""

from __future__ import annotations

import http.server
import threading
from typing import Any

import orjson

HANG_UP = 0  # a status that is none: the receiver closes the connection without answering


class Receiver:
    """A little HTTP server on a loopback port that records each POST and answers from a script."""

    def __init__(self, statuses: list[int]) -> None:
        # the status of each answer in turn (0: hang up without one); 200 once they run out
        self.statuses = statuses
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
                if status == HANG_UP:
                    self.close_connection = True
                    return
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
