"""What every handler reaches through `request.app.state.context`."""

from __future__ import annotations

import dataclasses

from starlette.requests import HTTPConnection

from server.backends.base import FileStore
from server.backends.factory import Backend
from server.config import Settings
from server.engine.worker import Worker
from server.tasks.service import TaskService


@dataclasses.dataclass
class Context:
    settings: Settings
    backend: Backend
    service: TaskService
    workers: list[Worker]

    @property
    def files(self) -> FileStore:
        return self.backend.files


def context(connection: HTTPConnection) -> Context:
    return connection.app.state.context
