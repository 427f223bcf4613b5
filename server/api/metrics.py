"""`GET /metrics`: the process's metrics in Prometheus' text format (see docs/observability.md).

Open like `/healthz`: it names no task and holds no secret, and an operator scrapes it from
inside the network the server runs in.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from latentcast.server.api.context import context
from latentcast.server.observability import refresh
from latentcast.server.observability.metrics import REGISTRY


async def metrics(request: Request) -> Response:
    ctx = context(request)
    await refresh(ctx.service, ctx.backend)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
