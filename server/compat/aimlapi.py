"""AI/ML API: `POST /v1/images/generations` for its SD3 models (provider-docs 000 and 001).

Waits for the task and answers 201 `{images: [{url, width, height, content_type}], timings,
seed, has_nsfw_concepts, prompt}`. A bad request is a 400 "Body validation error!" whose `meta`
names each field. See docs/compatibility.md.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from latentcast.server.compat.common import (
    HTTP_STATUS,
    Refusal,
    endpoint,
    finish,
    inference_seconds,
    invalid,
    json_body,
    parse,
    random_seed,
    start,
)
from latentcast.server.tasks.params import MAX_SEED

MODELS = ("stable-diffusion-v3-medium", "stable-diffusion-v35-large")
# the providers' pixel sizes for each `image_size` preset (width, height)
PRESETS = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
# AI/ML API runs these models with 28 steps and guidance 5 (SD3 Medium) or 3.5 (SD3.5 Large)
DEFAULT_STEPS = 28
DEFAULT_GUIDANCE = {"stable-diffusion-v3-medium": 5.0, "stable-diffusion-v35-large": 3.5}
# native field -> this API's name for it, for refusals that come from the native rules
NAMES = {"width": "image_size.width", "height": "image_size.height"}


class _Size(BaseModel):
    """`image_size` as an object (AI/ML API's schema: 64-1536, multiples of 32)."""

    model_config = ConfigDict(extra="forbid")

    width: int = Field(default=1024, ge=64, le=1536, multiple_of=32)
    height: int = Field(default=768, ge=64, le=1536, multiple_of=32)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: Literal["stable-diffusion-v3-medium", "stable-diffusion-v35-large"]
    prompt: str = Field(max_length=4000)
    negative_prompt: str = ""
    image_size: Any = "square_hd"  # a preset name or {width, height}: checked by `_size`
    guidance_scale: float | None = Field(default=None, ge=1, le=20)
    num_inference_steps: int = Field(default=DEFAULT_STEPS, ge=1, le=50)
    num_images: int = Field(default=1, ge=1, le=4)
    seed: int | None = Field(default=None, ge=1, le=MAX_SEED)
    output_format: Literal["jpeg", "png"] = "jpeg"
    enable_safety_checker: bool = True  # accepted; no safety checker runs here
    prompt_expansion: bool = False  # accepted; prompts are used as given


def _size(value: Any) -> tuple[int, int]:
    if isinstance(value, str) and value in PRESETS:
        return PRESETS[value]
    if isinstance(value, dict):
        size = parse(_Size, value, prefix="image_size")
        return size.width, size.height
    presets = ", ".join(PRESETS)
    raise invalid("image_size", "image_size", f"image_size: must be one of {presets}, or {{width, height}}")


def _render(refusal: Refusal) -> Response:
    status = HTTP_STATUS[refusal.kind]
    body: dict[str, Any] = {"statusCode": status, "error": HTTPStatus(status).phrase, "message": refusal.message}
    if refusal.kind == "validation":
        body["message"] = f"Body validation error! {refusal.message}"
        body["meta"] = refusal.fields
    return JSONResponse(body, status_code=status, headers=refusal.headers)


@endpoint(_render)
async def generate(request: Request) -> Response:
    body = parse(_Request, await json_body(request))
    width, height = _size(body.image_size)
    params = {
        "prompt": body.prompt,
        "negative_prompt": body.negative_prompt,
        "model": body.model,
        "width": width,
        "height": height,
        "num_inference_steps": body.num_inference_steps,
        "guidance_scale": body.guidance_scale or DEFAULT_GUIDANCE[body.model],
        "num_images": body.num_images,
        "seed": body.seed or random_seed(1, 2**32 - 1),
        "output_format": body.output_format,
    }
    record = await finish(request, await start(request, params, NAMES))
    images = [
        {"url": o["url"], "width": o["width"], "height": o["height"], "content_type": o["contenttype"]}
        for o in record.outputs
    ]
    answer = {
        "images": images,
        "timings": {"inference": inference_seconds(record)},
        "seed": record.seed,
        "has_nsfw_concepts": [False] * len(images),
        "prompt": body.prompt,
    }
    return JSONResponse(answer, status_code=201, headers={"X-Task-Id": record.id})


routes = [Route("/v1/images/generations", generate, methods=["POST"])]
