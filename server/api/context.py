"""What every handler reaches through `request.app.state.context`."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from latentcast.server.backends.base import FileStore
from latentcast.server.backends.factory import Backend
from latentcast.server.config import Settings
from latentcast.server.engine.worker import Worker
from latentcast.server.tasks.service import TaskService

if TYPE_CHECKING:  # not at run time: keyring imports the compat endpoints, which import this module
    from latentcast.server.security.keyring import KeyRing
    from latentcast.server.security.throttle import Throttle


@dataclasses.dataclass
class Context:
    settings: Settings
    backend: Backend
    service: TaskService
    workers: list[Worker]
    keys: KeyRing
    throttle: Throttle

    @property
    def files(self) -> FileStore:
        return self.backend.files


def context(connection: HTTPConnection) -> Context:
    return connection.app.state.context
