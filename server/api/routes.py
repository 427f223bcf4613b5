"""Every endpoint, and the module that serves it. Start here to find where a request goes."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route, WebSocketRoute

from latentcast.server.api import files, meta, metrics, sse, tasks, websocket
from latentcast.server.api import pages
from latentcast.server import compat

routes: list[BaseRoute] = [
    # the native API
    Route("/v1/tasks", tasks.create_task, methods=["POST"]),
    Route("/v1/tasks", tasks.list_tasks, methods=["GET"]),
    Route("/v1/tasks/{task_id}", tasks.get_task, methods=["GET"]),
    Route("/v1/tasks/{task_id}/cancel", tasks.cancel_task, methods=["POST"]),
    Route("/v1/tasks/{task_id}/events", sse.task_events, methods=["GET"]),
    Route("/v1/files/{task_id}/{name}", files.get_file, methods=["GET"]),
    Route("/v1/models", meta.list_models, methods=["GET"]),
    Route("/v1/workers", meta.list_workers, methods=["GET"]),
    Route("/healthz", meta.healthz, methods=["GET"]),
    Route("/readyz", meta.readyz, methods=["GET"]),
    Route("/metrics", metrics.metrics),
    # one socket for every task; also at /v1, where Wiro clients connect
    WebSocketRoute("/v1/ws", websocket.endpoint),
    WebSocketRoute("/v1", websocket.endpoint),
    *compat.routes,  # the hosted SD3 APIs' endpoints (server/compat, docs/compatibility.md)
    *pages.routes,  # the browser pages and static/ (last: "/static" is a mount)
]
