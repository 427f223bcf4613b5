"""What every handler reaches through `request.app.state.context`."""

from __future__ import annotations

import dataclasses

from starlette.requests import HTTPConnection

from latentcast.server.backends.factory import Backend
from latentcast.server.config import Settings
from latentcast.server.engine.fleet import WorkerHandle
from latentcast.server.security.keyring import KeyRing
from latentcast.server.security.throttle import Throttle
from latentcast.server.tasks.ports import FileStore
from latentcast.server.tasks.service import TaskService


@dataclasses.dataclass
class Context:
    settings: Settings
    backend: Backend
    service: TaskService
    workers: list[WorkerHandle]
    keys: KeyRing
    throttle: Throttle

    @property
    def files(self) -> FileStore:
        return self.backend.files


def context(connection: HTTPConnection) -> Context:
    return connection.app.state.context
