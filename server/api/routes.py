"""Every endpoint of the native API, and the module that serves it. Start here to find where a
request goes; server.app adds the providers' endpoints (server.compat) and the pages after these,
and makes the socket's endpoint (`websocket.endpoint`, with the client messages it answers)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route, WebSocketRoute

from latentcast.server.api import deliveries, files, inputs, meta, metrics, sse, tasks, websocket


def routes(socket: websocket.SocketEndpoint) -> list[BaseRoute]:
    return [
        Route("/v1/tasks", tasks.create_task, methods=["POST"]),
        Route("/v1/tasks", tasks.list_tasks, methods=["GET"]),
        Route("/v1/tasks/{task_id}", tasks.get_task, methods=["GET"]),
        Route("/v1/tasks/{task_id}", tasks.delete_task, methods=["DELETE"]),
        Route("/v1/tasks/{task_id}/cancel", tasks.cancel_task, methods=["POST"]),
        Route("/v1/tasks/{task_id}/events", sse.task_events, methods=["GET"]),
        Route("/v1/tasks/{task_id}/deliveries", deliveries.task_deliveries, methods=["GET"]),
        Route("/v1/deliveries", deliveries.recent_deliveries, methods=["GET"]),
        Route("/v1/tasks/{task_id}/inputs/{name}", inputs.get_input, methods=["GET"]),
        Route("/v1/uploads", inputs.create_upload, methods=["POST"]),
        Route("/v1/files/{task_id}/{name}", files.get_file, methods=["GET"]),
        Route("/v1/models", meta.list_models, methods=["GET"]),
        Route("/v1/workers", meta.list_workers, methods=["GET"]),
        Route("/healthz", meta.healthz, methods=["GET"]),
        Route("/readyz", meta.readyz, methods=["GET"]),
        Route("/metrics", metrics.metrics),
        WebSocketRoute("/v1/ws", socket),  # one socket for every task
    ]
