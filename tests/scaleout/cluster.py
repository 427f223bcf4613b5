"""A real cluster: redis-server, front-ends (`serve --workers 0`) and `latentcast worker` processes."""

from __future__ import annotations

from pathlib import Path

import httpx

from harness.processes import READY_TIMEOUT, RedisServer, ServerProcess
from harness.waiting import until

FAST = ["--visibility-timeout", "3", "--heartbeat", "0.5", "--preview-min-interval", "0"]


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.redis = RedisServer(root / "redis").start()
        self.frontends: list[ServerProcess] = []
        self.workers: dict[str, ServerProcess] = {}

    def frontend(self, *args: str) -> ServerProcess:
        process = ServerProcess(
            self.root / f"frontend-{len(self.frontends)}", "--broker", self.redis.url, "--workers", "0", *FAST, *args
        )
        process.start(wait=False).wait_ready(path="/healthz")  # ready only once a worker is live
        self.frontends.append(process)
        return process

    def worker(self, name: str, *args: str) -> ServerProcess:
        public = self.frontends[0].base_url
        process = ServerProcess(
            self.root / f"worker-{name}", "--broker", self.redis.url, "--name", name, "--public-url", public, *FAST,
            *args, command="worker",
        )
        self.workers[name] = process.start(wait=False)
        return process

    def wait_workers(self, names: set[str], timeout: float = READY_TIMEOUT) -> None:
        """Until the workers `names` are live and ready, and every front-end serves a model (each
        refreshes its catalog from the workers' heartbeats now and then). A worker started again
        under a killed one's name counts once its own process beats, not the dead one's last beat."""
        def serving() -> bool:
            listed = httpx.get(f"{self.frontends[0].base_url}/v1/workers").json()["data"]
            pids = {name: worker.pid for name, worker in self.workers.items()}
            live = {w["name"] for w in listed if w["ready"] and w["pid"] == pids.get(w["name"])}
            return live >= names and all(httpx.get(f"{f.base_url}/v1/models").json()["data"] for f in self.frontends)

        until(serving, lambda: f"workers {names} live; logs:\n" + "\n".join(w.log()[-2000:] for w in self.workers.values()),
              timeout, interval=0.2)

    def stop(self) -> None:
        for process in [*self.frontends, *self.workers.values()]:
            process.kill()
        self.redis.stop()
