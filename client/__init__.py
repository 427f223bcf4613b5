"""The Python client of Latentcast: submit Stable Diffusion 3 tasks and follow them live.

    from latentcast.client import AsyncClient, ProgressEvent

    async with AsyncClient("http://127.0.0.1:8000") as client:
        task = await client.submit(prompt="a lighthouse at dusk", width=512, height=512)
        async for event in task.events():
            if isinstance(event, ProgressEvent):
                print(event.step, event.steps)
        print(await task.download("out"))

`Client` is the same without `await`; `verify_webhook` checks a webhook the server sent (a
receiver's side, docs/webhooks.md). The command line (`latentcast generate`, `latentcast
watch`) is in `latentcast.client.cli`. See docs/client.md.
"""

from latentcast.client.async_client import AsyncClient, Task
from latentcast.client.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    AuthError,
    BadRequestError,
    ConflictError,
    FieldError,
    InternalServerError,
    LatentcastError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TaskCancelledError,
    TaskError,
    TaskFailedError,
    ValidationError,
)
from latentcast.client.events import (
    AcceptEvent,
    AssignEvent,
    CancelEvent,
    EndEvent,
    ErrorEvent,
    ErrorFullEvent,
    Event,
    OutputEvent,
    OutputFullEvent,
    PostprocessEndEvent,
    PostprocessStartEvent,
    PreprocessEndEvent,
    PreprocessStartEvent,
    Preview,
    ProgressEvent,
    QueueEvent,
    StartEvent,
)
from latentcast.client.image_info import GenerationInfo, read_info
from latentcast.client.models import Delivery, GeneratedImage, Output, TaskInfo, TaskPage
from latentcast.client.sync import Client, SyncTask
from latentcast.client.webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AcceptEvent",
    "AssignEvent",
    "AsyncClient",
    "AuthError",
    "AuthenticationError",
    "BadRequestError",
    "CancelEvent",
    "Client",
    "ConflictError",
    "Delivery",
    "EndEvent",
    "ErrorEvent",
    "ErrorFullEvent",
    "Event",
    "FieldError",
    "GeneratedImage",
    "GenerationInfo",
    "InternalServerError",
    "LatentcastError",
    "NotFoundError",
    "Output",
    "OutputEvent",
    "OutputFullEvent",
    "PermissionDeniedError",
    "PostprocessEndEvent",
    "PostprocessStartEvent",
    "PreprocessEndEvent",
    "PreprocessStartEvent",
    "Preview",
    "ProgressEvent",
    "QueueEvent",
    "RateLimitError",
    "StartEvent",
    "SyncTask",
    "Task",
    "TaskCancelledError",
    "TaskError",
    "TaskFailedError",
    "TaskInfo",
    "TaskPage",
    "ValidationError",
    "WebhookVerificationError",
    "read_info",
    "verify_webhook",
]
