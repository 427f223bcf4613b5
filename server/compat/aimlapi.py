"""AI/ML API: `POST /v1/images/generations` for its SD3 models (provider-docs 000 and 001).

Waits for the task and answers 201 in the shape the model's own page documents: page 000's
`{status, prompt[], model, ..., output.choices[].image_base64}` for `stable-diffusion-v3-medium`,
page 001's `{images, timings, seed, has_nsfw_concepts, prompt}` for `stable-diffusion-v35-large`.

The AI/ML API lists the openai SDK among its SDKs, so the same endpoint also takes what
`OpenAI(base_url=".../v1").images.generate(...)` sends (`n`, `size`, `response_format`; no `model`,
or any name `/v1/models` lists; OpenAI's options that mean nothing here are accepted and ignored)
and every answer carries what that SDK reads: `created` and `data[]`, and errors as `error:
{message, type, param, code}` beside AI/ML's `statusCode`, `message` and `meta`. Any other served
model name answers in page 001's shape. See docs/compatibility.md.
"""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from latentcast.server.compat.common import (
    HTTP_STATUS,
    Refusal,
    endpoint,
    finish,
    form_body,
    inference_seconds,
    invalid,
    json_body,
    output_bytes,
    parse,
    random_seed,
    start,
)
from latentcast.server.compat.openai_stream import image_events
from latentcast.server.tasks.input_images import InputRejected, openai_mask
from latentcast.server.tasks.params import MAX_SEED
from latentcast.server.tasks.record import TaskRecord

MEDIUM = "stable-diffusion-v3-medium"  # page 000
LARGE = "stable-diffusion-v35-large"  # page 001
# the providers' pixel sizes for each `image_size` preset (width, height)
PRESETS = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
DEFAULT_PRESET = "square_hd"
# AI/ML API runs these models with 28 steps and guidance 5 (SD3 Medium) or 3.5 (SD3.5 Large)
DEFAULT_STEPS = 28
DEFAULT_GUIDANCE = {MEDIUM: 5.0, LARGE: 3.5}
# a stream's events go out as they come: no proxy may hold them back
_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# the openai SDK's `size`: "WIDTHxHEIGHT", or "auto" (the model's default size)
_OPENAI_SIZE = re.compile(r"(\d{1,5})x(\d{1,5})")
# The openai SDK's error `type` for each kind of refusal ("invalid_request_error" for the others).
_ERROR_TYPES = {
    "unauthorized": "authentication_error",
    "queue_full": "rate_limit_error",
    "failed": "server_error",
    "cancelled": "server_error",
    "timeout": "server_error",
}


class _Size(BaseModel):
    """`image_size` as an object (AI/ML API's schema: 64-1536, multiples of 32)."""

    model_config = ConfigDict(extra="forbid")

    width: int = Field(default=1024, ge=64, le=1536, multiple_of=32)
    height: int = Field(default=768, ge=64, le=1536, multiple_of=32)


class ImagesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # AI/ML API's two ids, or any other name the server serves; checked against the served models
    model: str | None = Field(default=None, description="a served model's name or alias; default: the served model")
    prompt: str = Field(max_length=4000)
    negative_prompt: str = ""
    image_size: Any = None  # a preset name or {width, height} (default square_hd): checked by `_size`
    guidance_scale: float | None = Field(default=None, ge=1, le=20)
    num_inference_steps: int = Field(default=DEFAULT_STEPS, ge=1, le=50)
    num_images: int | None = Field(default=None, ge=1, le=4)
    seed: int | None = Field(default=None, ge=1, le=MAX_SEED)
    output_format: Literal["jpeg", "png"] = "jpeg"
    enable_safety_checker: bool = True  # accepted; no safety checker runs here
    prompt_expansion: bool = False  # accepted; prompts are used as given
    # what the openai SDK sends (OpenAI's names for num_images and the size, and how to return images)
    n: int | None = Field(default=None, ge=1, le=4)
    size: str | None = None  # checked by `_size`
    response_format: Literal["url", "b64_json"] | None = None
    # What the openai SDK may send that has no meaning for this model: accepted (of the SDK's type)
    # and ignored, so that code written for OpenAI runs unchanged.
    quality: str | None = Field(default=None, description="accepted, no effect: SD3 has one quality")
    style: str | None = Field(default=None, description="accepted, no effect: the prompt sets the style")
    user: str | None = Field(default=None, description="accepted, no effect: tasks belong to API keys")
    safety_identifier: str | None = Field(default=None, description="accepted, no effect: as `user`")
    moderation: str | None = Field(default=None, description="accepted, no effect: no moderation runs here")
    background: Literal["auto", "opaque"] | None = Field(
        default=None, description="`auto` or `opaque`: SD3's images are opaque (`transparent` is refused)"
    )
    # the openai SDK's image-generation stream: previews as partial images, then the images
    stream: bool | None = Field(default=None, description="Server-Sent Events in the openai SDK's stream shape")
    partial_images: int | None = Field(default=None, ge=0, le=3, description="previews sent with `stream`, at most")


def _size(body: ImagesRequest) -> tuple[int, int]:
    if body.size is not None:
        if body.image_size is not None:
            raise invalid("size", "exclusive", "size: give size or image_size, not both")
        return _openai_size(body.size)
    value = DEFAULT_PRESET if body.image_size is None else body.image_size
    if isinstance(value, str) and value in PRESETS:
        return PRESETS[value]
    if isinstance(value, dict):
        size = parse(_Size, value, prefix="image_size")
        return size.width, size.height
    presets = ", ".join(PRESETS)
    raise invalid("image_size", "image_size", f"image_size: must be one of {presets}, or {{width, height}}")


def _openai_size(value: str) -> tuple[int, int]:
    if value == "auto":
        return PRESETS[DEFAULT_PRESET]
    match = _OPENAI_SIZE.fullmatch(value)
    if match is not None:
        width, height = int(match[1]), int(match[2])
        try:
            parse(_Size, {"width": width, "height": height})
        except Refusal:
            pass
        else:
            return width, height
    raise invalid(
        "size", "size",
        f"size: {value!r} is not a size this model makes; give WIDTHxHEIGHT with each side 64-1536 in "
        "multiples of 32 (e.g. 1024x1024), or auto",
    )


def _count(body: ImagesRequest) -> int:
    if body.n is not None and body.num_images is not None:
        raise invalid("n", "exclusive", "n: give n or num_images, not both")
    return body.n or body.num_images or 1


def _names(body: ImagesRequest) -> dict[str, str]:
    """Native field -> the name this request used, for refusals that come from the native rules."""
    size = ("size", "size") if body.size is not None else ("image_size.width", "image_size.height")
    return {"width": size[0], "height": size[1], "num_images": "n" if body.n is not None else "num_images"}


def _error_body(refusal: Refusal) -> dict[str, Any]:
    status = HTTP_STATUS[refusal.kind]
    message = f"Body validation error! {refusal.message}" if refusal.kind == "validation" else refusal.message
    first = refusal.fields[0] if refusal.fields else None
    error = {
        "message": message,
        "type": _ERROR_TYPES.get(refusal.kind, "invalid_request_error"),
        "param": first["field"] if first else None,
        "code": first["rule"] if first else refusal.kind,
    }
    body: dict[str, Any] = {"statusCode": status, "message": message, "error": error}
    if refusal.kind == "validation":
        body["meta"] = refusal.fields
    return body


def _render(refusal: Refusal) -> Response:
    return JSONResponse(_error_body(refusal), status_code=HTTP_STATUS[refusal.kind], headers=refusal.headers)


def _page_000(model: str, body: ImagesRequest, record: TaskRecord, encoded: list[str]) -> dict[str, Any]:
    """SD3 Medium's documented answer (provider-docs 000)."""
    params = record.params
    return {
        "status": "completed",
        "prompt": [body.prompt],
        "model": model,
        "model_owner": "stability-ai",
        "tags": {},
        "num_returns": len(encoded),
        "args": {
            "model": model,
            "prompt": body.prompt,
            "n": params.num_images,
            "steps": params.num_inference_steps,
            "size": f"{params.width}x{params.height}",
        },
        "subjobs": [],
        "output": {"choices": [{"image_base64": image} for image in encoded]},
    }


def _page_001(model: str, body: ImagesRequest, record: TaskRecord, encoded: list[str]) -> dict[str, Any]:
    """SD3.5 Large's documented answer (provider-docs 001), also that of every other served name."""
    images = [
        {"url": o["url"], "width": o["width"], "height": o["height"], "content_type": o["contenttype"]}
        for o in record.outputs
    ]
    return {
        "images": images,
        "timings": {"inference": inference_seconds(record)},
        "seed": record.seed,
        "has_nsfw_concepts": [False] * len(images),
        "prompt": body.prompt,
    }



@endpoint(_render)
async def generate(request: Request) -> Response:
    body = parse(ImagesRequest, await json_body(request))
    width, height = _size(body)
    params = {
        "prompt": body.prompt,
        "negative_prompt": body.negative_prompt,
        "model": body.model,  # None: the served model
        "width": width,
        "height": height,
        "num_inference_steps": body.num_inference_steps,
        "guidance_scale": body.guidance_scale or DEFAULT_GUIDANCE.get(body.model or MEDIUM, DEFAULT_GUIDANCE[MEDIUM]),
        "num_images": _count(body),
        "seed": body.seed or random_seed(1, 2**32 - 1),
        "output_format": body.output_format,
    }
    queued = await start(request, params, _names(body))
    if body.stream:
        events = image_events(request, queued, body.partial_images or 0, _error_body)
        headers = {**_STREAM_HEADERS, "X-Task-Id": queued.id}
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    record = await finish(request, queued)
    encoded = [base64.b64encode(image).decode("ascii") for image in await output_bytes(request, record)]
    if body.response_format == "b64_json":
        data = [{"b64_json": image} for image in encoded]
    else:
        data = [{"url": output["url"]} for output in record.outputs]
    created = int(record.times.get("task_postprocess_end", record.created_at))
    model = body.model or record.model  # the name asked for, else the served model's own
    shape = _page_000 if model == MEDIUM else _page_001
    answer = {**shape(model, body, record, encoded), "created": created, "data": data}
    return JSONResponse(answer, status_code=201, headers={"X-Task-Id": record.id})


class EditRequest(BaseModel):
    """The form fields of the openai SDK's `images.edit` (the pictures come as its files)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    prompt: str = Field(max_length=4000)
    model: str | None = Field(default=None, description="a served model's name or alias; default: the served model")
    n: int = Field(default=1, ge=1, le=4)
    size: str | None = Field(default=None, description="WIDTHxHEIGHT or auto; default: the image's own size")
    response_format: Literal["url", "b64_json"] | None = None
    output_format: Literal["png", "jpeg", "webp"] = "png"
    stream: bool | None = Field(default=None, description="Server-Sent Events in the openai SDK's stream shape")
    partial_images: int | None = Field(default=None, ge=0, le=3, description="previews sent with `stream`, at most")
    # Latentcast's own, through the SDK's `extra_body`: how much of the schedule runs
    strength: float | None = Field(default=None, ge=0, le=1, description="default: 1.0 with a mask, else 0.6")
    negative_prompt: str = ""
    num_inference_steps: int = Field(default=DEFAULT_STEPS, ge=1, le=50)
    guidance_scale: float | None = Field(default=None, ge=1, le=20)
    seed: int | None = Field(default=None, ge=1, le=MAX_SEED)
    # accepted, no effect here (as on `images.generate`)
    quality: str | None = None
    user: str | None = None
    safety_identifier: str | None = None
    moderation: str | None = None
    input_fidelity: str | None = None
    output_compression: int | None = None
    background: Literal["auto", "opaque"] | None = None


@endpoint(_render)
async def edit(request: Request) -> Response:
    """`images.edit`: the image (and the mask, whose transparent pixels are repainted, as OpenAI's
    are) as files; answered as `images.generate` is."""
    fields, files = await form_body(request)
    body = parse(EditRequest, fields, strict=False)
    if unknown := set(files) - {"image", "image[]", "mask"}:
        name = min(unknown)
        raise invalid(name, "unknown_field", f"{name}: images.edit takes the files image and mask")
    pictures = {"image": _one_image(files)}
    if "mask" in files:
        try:
            pictures["mask"] = await asyncio.to_thread(openai_mask, files["mask"])
        except InputRejected as rejected:
            raise invalid(rejected.field, rejected.rule, str(rejected)) from None
    params: dict[str, Any] = {
        "prompt": body.prompt,
        "negative_prompt": body.negative_prompt,
        "model": body.model,
        "num_inference_steps": body.num_inference_steps,
        "guidance_scale": body.guidance_scale or DEFAULT_GUIDANCE.get(body.model or MEDIUM, DEFAULT_GUIDANCE[MEDIUM]),
        "num_images": body.n,
        "seed": body.seed or random_seed(1, 2**32 - 1),
        "output_format": body.output_format,
        "strength": body.strength if body.strength is not None else (1.0 if "mask" in pictures else None),
    }
    if body.size is not None and body.size != "auto":
        params["width"], params["height"] = _openai_size(body.size)
    queued = await start(request, params, {"num_images": "n", "width": "size", "height": "size"}, files=pictures)
    if body.stream:
        events = image_events(request, queued, body.partial_images or 0, _error_body)
        return StreamingResponse(events, media_type="text/event-stream", headers={**_STREAM_HEADERS, "X-Task-Id": queued.id})
    record = await finish(request, queued)
    if body.response_format == "b64_json":
        data = [{"b64_json": base64.b64encode(image).decode("ascii")} for image in await output_bytes(request, record)]
    else:
        data = [{"url": output["url"]} for output in record.outputs]
    created = int(record.times.get("task_postprocess_end", record.created_at))
    return JSONResponse({"created": created, "data": data}, status_code=200, headers={"X-Task-Id": record.id})


def _one_image(files: dict[str, bytes]) -> bytes:
    given = [name for name in ("image", "image[]") if name in files]
    if not given:
        raise invalid("image", "missing", "image: the picture to edit is required, as a file")
    if len(given) > 1:
        raise invalid("image", "one_image", "image: one picture is edited at a time")
    return files[given[0]]


routes = [
    Route("/v1/images/generations", generate, methods=["POST"]),
    Route("/v1/images/edits", edit, methods=["POST"]),
]
