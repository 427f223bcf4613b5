"""Builds the ASGI application: backend, task service, workers and routes, wired from `Settings`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from server.api.context import Context
from server.api.errors import APIError, handle_api_error
from server.api.routes import routes
from server.backends.factory import Backend, open_backend
from server.config import Settings
from server.engine.fleet import announce, announce_forever, build_workers
from server.observability import attach as observe
from server.tasks.catalog import ModelCatalog, ServedModel
from server.tasks.service import TaskService

log = logging.getLogger("latentcast.server")

CATALOG_REFRESH_SECONDS = 1.0


def build_context(settings: Settings) -> Context:
    backend = open_backend(settings)
    # One process serves its own model; on Redis the catalog follows the live workers' heartbeats.
    served = [ServedModel(settings.model, settings.model_aliases)] if settings.broker is None else []
    service = TaskService(backend.store, backend.queue, backend.bus, ModelCatalog(served))
    workers = build_workers(settings, service, backend, settings.workers)
    return Context(settings, backend, service, workers)


async def _refresh_catalog(backend: Backend, catalog: ModelCatalog) -> None:
    beats = await backend.live_workers()
    catalog.replace([ServedModel(b["model"], tuple(b["aliases"])) for b in beats])


async def _follow_workers(backend: Backend, catalog: ModelCatalog) -> None:
    while True:
        await asyncio.sleep(CATALOG_REFRESH_SECONDS)
        await _refresh_catalog(backend, catalog)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"error": {"type": "internal", "message": "internal server error"}}, status_code=500)


def create_app(settings: Settings) -> Starlette:
    context = build_context(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        backend, service, workers = context.backend, context.service, context.workers
        await backend.start()
        for worker in workers:
            await worker.load()
        observability = await observe(context)  # metrics, status logs, console bar: from the event stream
        if not backend.durable_queue:
            await service.recover()
        await announce(settings, backend, workers)
        if settings.broker is not None:
            await _refresh_catalog(backend, service.catalog)
        background = [
            asyncio.create_task(service.announce_positions()),
            asyncio.create_task(announce_forever(settings, backend, workers)),
        ]
        if settings.broker is not None:
            background.append(asyncio.create_task(_follow_workers(backend, service.catalog)))
        for worker in workers:
            worker.start()
        try:
            yield
        finally:
            for worker in workers:
                await worker.shutdown(settings.shutdown_grace)
            for task in background:
                task.cancel()
            observability.close()
            await backend.close()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={APIError: handle_api_error, Exception: _internal_error},
    )
    app.state.context = context
    return app
