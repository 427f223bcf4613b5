"""Builds the ASGI application: backend, task service, workers and routes, wired from `Settings`.

The top of the layers (README.md, "Layout"): the only place, with server.cli and
server.worker_command, that opens a backend and hands its parts to the layers below, and that
puts the native API, the providers' endpoints and the pages together.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket, WebSocketState

from latentcast.server import compat
from latentcast.server.api import openapi, pages, websocket
from latentcast.server.api.context import Context
from latentcast.server.api.operations import operations as api_operations
from latentcast.server.api.routes import routes as api_routes
from latentcast.server.backends.factory import Backend, open_backend
from latentcast.server.compat import wiro_detail
from latentcast.server.compat.operations import operations as compat_operations
from latentcast.server.config import Settings
from latentcast.server.deliveries.bodies import event_body
from latentcast.server.deliveries.loop import DeliveryLoop
from latentcast.server.engine.fleet import WorkerHandle, announce, announce_forever, build_workers, worker_names
from latentcast.server.errors import RequestRefused, error_response, handle_api_error, store_unavailable
from latentcast.server.observability import attach as observe
from latentcast.server.observability import counting_heartbeats
from latentcast.server.observability.metrics import observe_preview
from latentcast.server.security.body import BodyLimit
from latentcast.server.security.browser import protect
from latentcast.server.security.keyring import KeyRing
from latentcast.server.security.throttle import RateLimit, Throttle
from latentcast.server.tasks.catalog import ModelCatalog, ServedModel
from latentcast.server.tasks.outage import Backoff, every, until_reachable
from latentcast.server.tasks.ports import StoreBusy, StoreUnavailable
from latentcast.server.tasks.service import TaskService
from latentcast.server.worker_process.api_side import WorkerProcess

log = logging.getLogger("latentcast.server")

CATALOG_REFRESH_SECONDS = 1.0
RETENTION_SWEEP_SECONDS = 3600.0


def build_context(settings: Settings) -> Context:
    backend = open_backend(settings)
    # One process serves its own model; on Redis the catalog follows the live workers' heartbeats.
    if settings.broker is None:
        catalog = ModelCatalog([ServedModel(settings.model, settings.model_aliases)])
    else:
        catalog = ModelCatalog([], follow=functools.partial(_served_by_live_workers, backend))
    service = backend.task_service(catalog)
    keys = KeyRing(backend.keys)
    workers = _workers(settings, backend, service)
    return Context(settings, backend, service, workers, keys, Throttle(settings, keys, service))


def _workers(settings: Settings, backend: Backend, service: TaskService) -> list[WorkerHandle]:
    """Each worker in a process of its own (docs/process-model.md), or as threads of this one."""
    if settings.worker_threads:
        return list(build_workers(settings, service, backend.files, settings.workers, time_preview=observe_preview,
                                  on_cancel=service.on_cancel))
    return [WorkerProcess(settings, service, name) for name in worker_names(settings, settings.workers)]


async def _served_by_live_workers(backend: Backend) -> list[ServedModel]:
    return [ServedModel(b["model"], tuple(b["aliases"])) for b in await backend.live_workers() if b.get("live", True)]


async def _follow_workers(catalog: ModelCatalog) -> None:
    await asyncio.sleep(CATALOG_REFRESH_SECONDS)
    await every(CATALOG_REFRESH_SECONDS, catalog.refresh, Backoff("model catalog", log))


async def _delete_expired(service: TaskService, retention: float) -> None:
    """Ended tasks created more than `--retention` ago go, with their events and files, once an hour (and at
    start). On Redis their keys expire by themselves and this finds none."""

    async def sweep() -> None:
        if removed := await service.delete_expired(retention):
            log.info("retention: deleted %d ended tasks created more than %g s ago", removed, retention)

    await every(RETENTION_SWEEP_SECONDS, sweep, Backoff("retention", log))


def _deliveries(settings: Settings, backend: Backend, service: TaskService) -> DeliveryLoop:
    """The webhook sender, with the body of each format: the native event, and Wiro's callback."""
    bodies = {"native": event_body, "wiro": wiro_detail.callback_body}
    return DeliveryLoop(settings, service, backend.outbox, backend.keys, bodies)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, wrong method) in the API's JSON shape too."""
    assert isinstance(exc, HTTPException)
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = f"no such path: {request.url.path}" if exc.status_code == 404 else str(exc.detail)
    return error_response(RequestRefused(exc.status_code, kind, message, headers=exc.headers))


async def _unavailable(conn: HTTPConnection, exc: Exception) -> Response | None:
    """The backend is down (Redis restarting, a full disk), or busy (no connection to it came free
    in time): a 503 the client may retry, not a 500 and a traceback, saying which. A socket
    handshake gets the same 503; an open socket is closed with 1013 (try again later), and the
    client resumes it with `since`."""
    log.warning("%s answered 503: %s", conn.url.path, exc)
    busy = isinstance(exc, StoreBusy)
    if not isinstance(conn, WebSocket):
        return error_response(store_unavailable(exc, busy=busy))
    if conn.application_state is WebSocketState.CONNECTING:
        await conn.send_denial_response(error_response(store_unavailable(exc, busy=busy)))
    else:
        state = "busy" if busy else "unreachable"
        await conn.close(1013, f"the task store is {state}; reconnect and resubscribe with since")
    return None


async def _internal_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, StoreUnavailable):  # raised in a middleware (a key lookup), outside the routes
        return error_response(store_unavailable(exc, busy=isinstance(exc, StoreBusy)))
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
        observability = await observe(service)  # metrics, status logs, console bar: from the event stream
        publish = counting_heartbeats(backend.announce)
        if not backend.durable_queue:
            # A full disk at start waits here, said once in the log, until it can record again.
            await until_reachable(service.recover, Backoff("recovering unfinished tasks", log))
        await announce(settings, publish, workers)
        if settings.broker is not None:
            await service.catalog.refresh()
        background = [
            asyncio.create_task(service.announce_positions(shared_queue=settings.broker is not None)),
            asyncio.create_task(announce_forever(settings, publish, workers)),
            asyncio.create_task(_delete_expired(service, settings.retention)),
            asyncio.create_task(_deliveries(settings, backend, service).run()),
        ]
        if settings.broker is not None:
            background.append(asyncio.create_task(_follow_workers(service.catalog)))
        for worker in workers:
            worker.start()
        try:
            yield
        finally:
            for worker in workers:
                await worker.shutdown(settings.shutdown_grace)
            for task in background:
                task.cancel()
            # stopped before the backend closes: a webhook being sent is left unrecorded, sent again later
            await asyncio.gather(*background, return_exceptions=True)
            observability.close()
            await backend.close()

    # One socket endpoint, at /v1/ws and at Wiro's /v1, answering the native client messages and the providers'.
    socket = websocket.endpoint({**websocket.MESSAGE_HANDLERS, **compat.MESSAGE_HANDLERS})
    app = Starlette(
        # the pages last: "/static" is a mount
        routes=[
            *api_routes(socket),
            *compat.routes(socket),
            openapi.route({**api_operations, **compat_operations}),
            *pages.routes,
        ],
        lifespan=lifespan,
        exception_handlers={
            RequestRefused: handle_api_error,
            HTTPException: _http_error,
            # (Starlette types a handler as a request's or a socket's; Starlette calls this one with both)
            StoreUnavailable: _unavailable,  # type: ignore[dict-item]
            Exception: _internal_error,
        },
    )
    app.state.context = context
    # No redirect from "/v1/tasks/" to "/v1/tasks": its answer is an empty 307 that API clients take
    # for success, and `/v1/tasks/%2F` (an id of "/") would land on the list. A 404 names the path.
    app.router.redirect_slashes = False
    # Inside the browser guard and CORS (added after these, so outside them): a refusal here still
    # carries CORS headers, so a page can read it. The rate is checked before the body is read.
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, min_rate=settings.min_body_rate, grace=settings.header_timeout
    )
    app.add_middleware(RateLimit, throttle=context.throttle)
    protect(app, settings)  # CORS, browser origins, nosniff (docs/security.md)
    return app
