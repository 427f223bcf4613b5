"""What each provider's endpoint takes and answers, for the OpenAPI document (server.api.openapi).

Requests are each provider module's own pydantic models (under public names: in their modules they
are private); answers are built as dicts there, and described here in each provider's shape.
tests/core/test_openapi.py checks real answers against these models. Field by field, the providers'
meanings are in docs/compatibility.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, RootModel

from latentcast.server.api.openapi import KEY, KEY_OR_TOKEN, Operation, Param, Reply, Requirement, Schema
from latentcast.server.api.operations import Answer, FieldError
from latentcast.server.compat import aimlapi, segmind, segmind_queue, texttoimage, wiro

_AIML, _WIRO, _SEGMIND, _TEXT_TO_IMAGE = "AI/ML API", "Wiro", "Segmind", "textToImage"
_BINARY_JPEG = {"type": "string", "contentMediaType": "image/jpeg"}


# -- AI/ML API ------------------------------------------------------------------------------------


class OpenAIImage(Answer):
    """What the openai SDK reads: one of the two, as `response_format` asked."""

    url: str | None = None
    b64_json: str | None = None


class _OpenAIFields(Answer):
    created: int = Field(description="Unix seconds")
    data: list[OpenAIImage]


class AimlApiImage(Answer):
    url: str
    width: int
    height: int
    content_type: str


class AimlApiTimings(Answer):
    inference: float = Field(description="seconds")


class AimlApiLargeAnswer(_OpenAIFields):
    """`stable-diffusion-v35-large`'s answer (provider-docs 001)."""

    images: list[AimlApiImage]
    timings: AimlApiTimings
    seed: int
    has_nsfw_concepts: list[bool]
    prompt: str


class AimlApiArgs(Answer):
    model: str
    prompt: str
    n: int
    steps: int
    size: str = Field(description="WIDTHxHEIGHT")


class AimlApiChoice(Answer):
    image_base64: str


class AimlApiOutput(Answer):
    choices: list[AimlApiChoice]


class AimlApiMediumAnswer(_OpenAIFields):
    """`stable-diffusion-v3-medium`'s answer (provider-docs 000)."""

    status: str
    prompt: list[str]
    model: str
    model_owner: str
    tags: dict[str, Any]
    num_returns: int
    args: AimlApiArgs
    subjobs: list[Any]
    output: AimlApiOutput


class AimlApiAnswer(RootModel[AimlApiMediumAnswer | AimlApiLargeAnswer]):
    """In the shape of the requested model's own page."""


class OpenAIError(Answer):
    message: str
    type: str = Field(description="`invalid_request_error`, `authentication_error`, `rate_limit_error`, `server_error`")
    param: str | None = Field(description="the first field at fault")
    code: str | None


class OpenAIEditForm(aimlapi.EditRequest):
    """`images.edit`'s form: the fields, and the pictures as files."""

    image: bytes = Field(description="the picture to edit (or one `image[]`)")
    mask: bytes | None = Field(default=None, description="a PNG whose transparent pixels are repainted")


class AimlApiError(Answer):
    statusCode: int
    message: str
    error: OpenAIError
    meta: list[FieldError] = Field(default_factory=list, description="every field at fault (validation errors)")


# -- Segmind --------------------------------------------------------------------------------------


class SegmindBase64Answer(Answer):
    image: str = Field(description="the first image, base64")
    images: list[str] = Field(description="every image, base64")
    seed: int


class SegmindError(Answer):
    error: str
    fields: list[FieldError] = Field(default_factory=list, description="every field at fault")


class SegmindQueued(Answer):
    request_id: str = Field(description="the task id: the task streams events like any other")
    status: Literal["QUEUED"]
    status_url: str
    response_url: str


class SegmindMetrics(Answer):
    inference_time: float | None = Field(default=None, description="seconds, once COMPLETED")


class SegmindState(Answer):
    status: Literal["QUEUED", "PROCESSING", "COMPLETED", "FAILED"]
    request_id: str
    metrics: SegmindMetrics
    error: str | None = Field(default=None, description="why, when FAILED (a cancelled task is FAILED too)")


class SegmindStatus(SegmindState):
    status_url: str
    response_url: str


class SegmindResult(SegmindState):
    output: str | list[str] | None = Field(description="the image's URL (a list for several samples); null until done")
    seed: int


# -- textToImage ----------------------------------------------------------------------------------


class TextToImageData(Answer):
    image: str = Field(description="the PNG, base64")
    seed: int


class TextToImageAnswer(Answer):
    code: Literal[0]
    message: Literal["success"]
    data: TextToImageData


class TextToImageError(Answer):
    code: Literal[-1]
    message: str
    data: None


# -- Wiro -----------------------------------------------------------------------------------------


class WiroTaskRef(BaseModel):
    """Which task: its token alone reads it; its id (or changing it) takes the key that created it."""

    tasktoken: str | None = None
    taskid: str | None = None


class WiroProblem(Answer):
    code: int = Field(description="0 bad request, 1 not found or not possible now, 96 too many tasks")
    message: str


class WiroFailure(Answer):
    result: Literal[False]
    errors: list[WiroProblem]


class WiroQueued(Answer):
    result: Literal[True]
    errors: list[WiroProblem]
    taskid: str
    socketaccesstoken: str = Field(description="the task's token: `task_info` on the socket, Task/Detail")


class WiroOutput(BaseModel):
    name: str
    contenttype: str
    size: str
    url: str


class WiroTask(BaseModel):
    """The fields a client reads; Wiro's others are there too (docs/compatibility.md)."""

    id: str
    uuid: str
    socketaccesstoken: str
    parameters: dict[str, str]
    status: str = Field(description="the latest lifecycle event's type, e.g. `task_postprocess_end`")
    pexit: str = Field(description='"0" done, "1" failed or cancelled')
    debugoutput: str
    debugerror: str
    elapsedseconds: str
    outputs: list[WiroOutput]


class WiroDetail(Answer):
    result: Literal[True]
    errors: list[WiroProblem]
    total: str
    tasklist: list[WiroTask]


class WiroDone(Answer):
    result: Literal[True]
    errors: list[WiroProblem]


class WiroQueuedOrFailure(RootModel[WiroQueued | WiroFailure]):
    """Wiro answers HTTP 200 either way: `result` tells."""


class WiroDetailOrFailure(RootModel[WiroDetail | WiroFailure]):
    """Wiro answers HTTP 200 either way: `result` tells."""


class WiroDoneOrFailure(RootModel[WiroDone | WiroFailure]):
    """Wiro answers HTTP 200 either way: `result` tells."""


_WIRO_MEDIA = ("application/json", "multipart/form-data", "application/x-www-form-urlencoded")
# What every endpoint that waits for its task may answer besides its own refusals.
_WAITING = {
    429: "The queue is full.",
    500: "The task failed or was cancelled.",
    504: "The task was not done in time; it has been cancelled.",
}
_SEGMIND_REQUEST = Schema(segmind.Txt2ImgRequest, "SegmindTxt2ImgRequest")
_SEGMIND_EXAMPLES = {
    "Segmind's example, its defaults spelt out": {
        "prompt": "a lighthouse at dusk, oil painting",
        "negative_prompt": "low quality, blurry",
        "samples": 1,
        "scheduler": "DPM++ 2M",
        "num_inference_steps": 25,
        "guidance_scale": 5,
        "seed": 468685,
        "img_width": 1024,
        "img_height": 1024,
        "base64": False,
    },
}
_WIRO_TASK_EXAMPLES = {"By the task's socket token": {"tasktoken": "SOCKET_ACCESS_TOKEN"}, "By its id": {"taskid": "TASK_ID"}}


def _refusals(shape: type[BaseModel], described: Mapping[int, str]) -> dict[int, Reply]:
    """A provider's refusals in its error shape: those `described`, and a missing or bad key."""
    every = {**described, 401: "No valid API key (a server with keys)."}
    return {status: Reply(every[status], shape) for status in sorted(every)}


def _segmind_request(summary: str, answer: type[BaseModel], what: str) -> Operation:
    """A Segmind v2 request's status or result: FAILED comes with HTTP 422, as on Segmind."""
    return Operation(
        summary=summary,
        tag=_SEGMIND,
        params=(Param("task_id", "path", "the `request_id`"),),
        replies={
            200: Reply(what, answer),
            **_refusals(SegmindError, {404: "No such request (or another key's)."}),
            422: Reply("FAILED, with `error`.", answer),
        },
        security=KEY_OR_TOKEN,
    )


def _wiro_task(summary: str, answer: type[BaseModel], what: str, security: tuple[Requirement, ...] = KEY) -> Operation:
    """Task/Detail, Task/Cancel or Task/Kill: a task named in the body; HTTP 200 even when refused."""
    return Operation(
        summary=summary,
        tag=_WIRO,
        body=WiroTaskRef,
        body_media_types=_WIRO_MEDIA,
        examples=_WIRO_TASK_EXAMPLES,
        replies={200: Reply(what, answer), 401: Reply("No valid API key (a server with keys).", WiroFailure)},
        security=security,
    )


operations: dict[Callable[..., Any], Operation] = {
    aimlapi.generate: Operation(
        summary="Generate images (AI/ML API; the openai SDK's images.generate)",
        tag=_AIML,
        description=(
            "Waits for the task, then answers in the shape of the model's own page (000 for "
            "`stable-diffusion-v3-medium`, 001 for `stable-diffusion-v35-large`), with the openai SDK's "
            "`created` and `data`. The task's id is in `X-Task-Id`."
        ),
        body=Schema(aimlapi.ImagesRequest, "AimlApiImagesRequest"),
        examples={
            "AI/ML API's SD3 Medium example": {
                "model": "stable-diffusion-v3-medium",
                "prompt": "A T-Rex relaxing on a beach, lying on a sun lounger and wearing sunglasses.",
            },
            "What the openai SDK sends": {
                "model": "stable-diffusion-v35-large",
                "prompt": "a lighthouse at dusk",
                "n": 1,
                "size": "1024x576",
                "response_format": "b64_json",
            },
        },
        replies={
            200: Reply(
                "With `stream: true`: the openai SDK's image-generation stream (`image_generation.partial_image` "
                "events, then one `image_generation.completed` per image; `{\"error\"}` when the task fails).",
                media_type="text/event-stream",
                schema={"type": "string"},
                headers={"X-Task-Id": "the native task's id"},
            ),
            201: Reply("The images.", AimlApiAnswer, headers={"X-Task-Id": "the native task's id"}),
            **_refusals(
                AimlApiError,
                {400: "A field breaks a rule (`meta`, `error.param`), or the model is not served.", **_WAITING},
            ),
        },
        security=KEY,
    ),
    aimlapi.edit: Operation(
        summary="Edit an image (the openai SDK's images.edit)",
        tag=_AIML,
        description=(
            "Image-to-image, or inpainting with a mask whose transparent pixels are repainted, as the openai "
            "SDK's `images.edit` sends it (`multipart/form-data`). Waits for the task; its id is in `X-Task-Id`."
        ),
        body=Schema(OpenAIEditForm, "OpenAIEditForm"),
        body_media_types=("multipart/form-data",),
        examples={"What the openai SDK sends": {"prompt": "a lighthouse at dusk", "image": "<the picture's bytes>"}},
        replies={
            200: Reply(
                "The images (`url` or `b64_json`); with `stream: true`, the image-generation stream.",
                Schema(_OpenAIFields, "OpenAIImagesAnswer"),
                headers={"X-Task-Id": "the native task's id"},
            ),
            **_refusals(AimlApiError, {400: "A field or a picture breaks a rule (`error.param`).", **_WAITING}),
        },
        security=KEY,
    ),
    segmind.txt2img: Operation(
        summary="Generate an image (Segmind; the Segmind SDK's run_sync)",
        tag=_SEGMIND,
        description="Waits for the task. The task's id is in `X-Task-Id`, its seed in `X-Seed`.",
        body=_SEGMIND_REQUEST,
        examples=_SEGMIND_EXAMPLES,
        replies={
            200: Reply(
                "The image's bytes; with `base64: true`, JSON.",
                SegmindBase64Answer,
                alternatives={"image/jpeg": _BINARY_JPEG},
                headers={"X-Task-Id": "the native task's id", "X-Seed": "the seed used"},
            ),
            **_refusals(
                SegmindError,
                {400: "A field breaks a rule (`fields`).", 404: "The model is not served here.", **_WAITING},
            ),
        },
        security=KEY,
    ),
    segmind_queue.submit: Operation(
        summary="Queue a request (Segmind v2; the Segmind SDK's run and submit_async)",
        tag=_SEGMIND,
        params=(Param("slug", "path", "`stable-diffusion-3-medium-txt2img`"),),
        body=_SEGMIND_REQUEST,
        examples=_SEGMIND_EXAMPLES,
        replies={
            200: Reply("Queued: poll `status_url`, then read `response_url`.", SegmindQueued),
            **_refusals(
                SegmindError,
                {400: "A field breaks a rule (`fields`).", 404: "No such model here.", 429: _WAITING[429]},
            ),
        },
        security=KEY,
    ),
    segmind_queue.status: _segmind_request(
        "A queued request's state (Segmind v2)", SegmindStatus, "QUEUED, PROCESSING or COMPLETED."
    ),
    segmind_queue.result: _segmind_request(
        "A queued request's result (Segmind v2)",
        SegmindResult,
        "The state, and once COMPLETED the image's URL in `output`.",
    ),
    texttoimage.text_to_image: Operation(
        summary="Generate an image (the SD3 textToImage API)",
        tag=_TEXT_TO_IMAGE,
        description="Waits for the task. Served at both paths its provider's pages use.",
        body=Schema(texttoimage.TextToImageRequest, "TextToImageRequest"),
        examples={
            "A 16:9 image inside 1024x1024 (1024x576)": {
                "prompt": "a lighthouse at dusk",
                "width": 1024,
                "height": 1024,
                "aspect_ratio": "16:9",
                "model": "sd3-medium",
            },
        },
        replies={
            200: Reply("The image.", TextToImageAnswer, headers={"X-Task-Id": "the native task's id"}),
            **_refusals(TextToImageError, {400: "A field breaks a rule, or the model is not served.", **_WAITING}),
        },
        security=KEY,
    ),
    wiro.run: Operation(
        summary="Run a task (Wiro)",
        tag=_WIRO,
        description="Queues the task and answers at once; follow it with `task_info` on the socket at `/v1`.",
        params=(
            Param("owner", "path", "`owner/project` is a served model's name"),
            Param("project", "path", "`owner/project` is a served model's name"),
        ),
        body=Schema(wiro.RunRequest, "WiroRunRequest"),
        body_media_types=_WIRO_MEDIA,
        examples={
            "Wiro's text-to-image inputs": {
                "prompt": "a lighthouse at dusk",
                "negativePrompt": "blurry",
                "samples": 1,
                "steps": 28,
                "scale": 7,
                "width": 1024,
                "height": 1024,
                "scheduler": "FlowMatchEulerDiscreteScheduler",
            },
        },
        replies={
            200: Reply("Queued, or refused (`result` false).", WiroQueuedOrFailure),
            401: Reply("No valid API key (a server with keys).", WiroFailure),
        },
        security=KEY,
    ),
    wiro.task_detail: _wiro_task(
        "A task's detail (Wiro)",
        WiroDetailOrFailure,
        "The task, or a refusal (`result` false).",
        security=(*KEY, {}),  # a task's token alone reads it
    ),
    wiro.task_cancel: _wiro_task(
        "Cancel a queued task (Wiro)", WiroDoneOrFailure, "Cancelled, or a refusal (`result` false)."
    ),
    wiro.task_kill: _wiro_task(
        "Stop a running task (Wiro)", WiroDoneOrFailure, "Stopping, or a refusal (`result` false)."
    ),
}
