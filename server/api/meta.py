"""Models, liveness and readiness."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from latentcast.server.api.access import require_key
from latentcast.server.api.context import context
from latentcast.server.tasks.ports import StoreBusy, StoreUnavailable


async def list_models(request: Request) -> JSONResponse:
    catalog = context(request).service.catalog
    return JSONResponse({"object": "list", "data": [m.describe() for m in catalog.models]})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready when every worker of this process has its model loaded, the backend answers and can
    record new tasks (Redis is up; the disk under SQLite is not full), and, on a shared backend
    (Redis), some worker anywhere is alive to run what is submitted: a load balancer sends nothing
    to a front-end that could only refuse it. (A single process's workers are its own: one started
    with `--workers 0` only queues, by choice.)"""
    ctx = context(request)
    states = [{"name": w.name, "ready": w.ready.is_set(), "live": w.live, "task": w.current_task} for w in ctx.workers]
    try:
        await ctx.service.check()
        live = sum(1 for beat in await ctx.backend.live_workers() if beat.get("ready") and beat.get("live", True))
        store = "reachable"
    except StoreBusy:
        live, store = 0, "busy"
    except StoreUnavailable:
        live, store = 0, "unreachable"
    shared = ctx.settings.broker is not None
    ready = all(s["ready"] and s["live"] for s in states) and store == "reachable" and (live > 0 or not shared)
    body = {"ready": ready, "workers": states, "store": store, "live_workers": live}
    return JSONResponse(body, status_code=200 if ready else 503)


async def list_workers(request: Request) -> JSONResponse:
    """Every live worker, wherever it runs: name, device, model, current task, last heartbeat."""
    await require_key(request)
    return JSONResponse({"data": await context(request).backend.live_workers()})
