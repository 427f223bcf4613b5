"""A task as Wiro's `POST /Task/Detail` shows it (provider-docs 004), which is also what its
`callbackUrl` receives when it ends (a delivery of the durable webhook machinery, server.deliveries).

The record is a projection of the native task and its event log, so it works for any task,
whichever door it came in by. Wiro writes every number as a string and every time as Unix
seconds ("0" when it has not happened); its `status` is the name of the task's latest lifecycle
event. A failed task ends, as on Wiro, with status `task_postprocess_end`, `pexit` "1", no outputs
and the error in `debugerror`; a cancelled or killed one with `task_cancel`.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import orjson

from latentcast.server.compat.schedulers import WIRO_SCHEDULERS
from latentcast.server.protocol.events import EventType, TaskStatus
from latentcast.server.tasks.outbox import Claim
from latentcast.server.tasks.record import TaskRecord
from latentcast.server.tasks.service import TaskNotFound, TaskService

_LIFECYCLE = frozenset(
    {
        EventType.QUEUE, EventType.ACCEPT, EventType.PREPROCESS_START, EventType.PREPROCESS_END,
        EventType.ASSIGN, EventType.START, EventType.END, EventType.POSTPROCESS_START,
        EventType.POSTPROCESS_END, EventType.CANCEL,
    }
)
# A native scheduler's Wiro name, for tasks created with one (others show none, as Wiro's own would)
_SCHEDULER_NAMES = {native: wiro for wiro, native in WIRO_SCHEDULERS.items()}


def task_uuid(task_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"latentcast:task:{task_id}"))


def _digest(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _seconds(at: float | None) -> str:
    return str(int(at)) if at else "0"


def _elapsed(record: TaskRecord) -> float:
    """Seconds from acceptance to the end of denoising (or cancel, or failure; or now, while it runs)."""
    times = record.times
    began = times.get(EventType.ACCEPT)
    if began is None:
        return 0.0
    stopped = times.get(EventType.END) or times.get(EventType.CANCEL)
    if stopped is None:
        stopped = times.get(EventType.ERROR, began) if record.status.is_final else time.time()
    return max(0.0, stopped - began)


def _callback_url(record: TaskRecord) -> str:
    """The task's `callbackUrl`: a Wiro webhook's URL. A native webhook's is not shown (its URL may
    hold its receiver's secret, and Task/Detail opens to the task's token)."""
    hook = record.webhook
    return hook.url if hook is not None and hook.format == "wiro" else ""


def parameters(record: TaskRecord) -> dict[str, str]:
    """The task's parameters with the Wiro tool's names, as strings (Wiro's form values are)."""
    p = record.params
    return {
        "prompt": p.prompt,
        "negativePrompt": p.negative_prompt,
        "samples": str(p.num_images),
        "steps": str(p.num_inference_steps),
        "scale": f"{p.guidance_scale:g}",
        "seed": str(record.seed),
        "width": str(p.width),
        "height": str(p.height),
        "scheduler": _SCHEDULER_NAMES.get(p.scheduler, ""),
    }


async def task_detail(service: TaskService, record: TaskRecord) -> dict[str, Any]:
    """One entry of Task/Detail's `tasklist`."""
    events = await service.events(record.id)
    status = next((e.type for e in reversed(events) if e.type in _LIFECYCLE), str(EventType.QUEUE))
    logs = {e.type: e.message for e in events if e.type in (EventType.OUTPUT_FULL, EventType.ERROR_FULL)}
    failed = record.status is TaskStatus.FAILED
    if failed:
        status = str(EventType.POSTPROCESS_END)

    def at(event: str) -> str:
        return _seconds(record.times.get(event))

    task_id, outputs_at = record.id, at(EventType.POSTPROCESS_END)
    outputs = [
        {
            "id": _digest(f"{task_id}/{o['name']}"),
            "name": o["name"],
            "contenttype": o["contenttype"],
            "parentid": _digest(task_id),
            "uuid": task_uuid(task_id),
            "size": str(o["size"]),
            "addedtime": outputs_at,
            "modifiedtime": outputs_at,
            "accesskey": "",
            "foldercount": "0",
            "filecount": "0",
            "ispublic": 0,
            "expiretime": None,
            "url": o["url"],
        }
        for o in record.outputs
    ]
    error = (record.error or {}).get("message") or ""
    return {
        "id": task_id,
        "uuid": task_uuid(task_id),
        "name": "",
        "socketaccesstoken": record.token,
        "parameters": parameters(record),
        "debugoutput": logs.get(EventType.OUTPUT_FULL, ""),
        "debugerror": logs.get(EventType.ERROR_FULL, error),
        "starttime": at(EventType.START),
        "endtime": at(EventType.END),
        "elapsedseconds": f"{_elapsed(record):.4f}",
        "status": status,
        "cps": "0",
        "totalcost": "0",
        "guestid": None,
        "projectid": "0",
        "modelid": "0",
        "description": "",
        "basemodelid": "0",
        "runtype": "model",
        "modelfolderid": "",
        "modelfileid": "",
        "callbackurl": _callback_url(record),
        "marketplaceid": None,
        "createtime": _seconds(record.created_at),
        "canceltime": at(EventType.CANCEL),
        "assigntime": at(EventType.ASSIGN),
        "accepttime": at(EventType.ACCEPT),
        "preprocessstarttime": at(EventType.PREPROCESS_START),
        "preprocessendtime": at(EventType.PREPROCESS_END),
        "postprocessstarttime": at(EventType.POSTPROCESS_START),
        "postprocessendtime": outputs_at,
        "pexit": "1" if failed or record.status is TaskStatus.CANCELLED else "0",
        "categories": '["tool","text-to-image"]',
        "outputs": outputs,
        "size": str(sum(o["size"] for o in record.outputs)),
    }


async def detail_body(service: TaskService, record: TaskRecord) -> dict[str, Any]:
    """Task/Detail's whole answer for one task (also what a callbackUrl receives)."""
    return {"total": "1", "errors": [], "tasklist": [await task_detail(service, record)], "result": True}


async def callback_body(service: TaskService, claim: Claim) -> bytes | None:
    """What a `callbackUrl` receives when its task ends (the delivery of its terminal event): the
    task's final Task/Detail answer. None once the task is gone."""
    try:
        record = await service.get(claim.task_id)
    except TaskNotFound:
        return None
    return orjson.dumps(await detail_body(service, record))
