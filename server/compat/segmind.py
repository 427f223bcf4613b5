"""Segmind: `POST /v1/stable-diffusion-3-medium-txt2img` (provider-docs 003), what the Segmind SDK's
`run_sync` calls; its `run` uses the v2 queue (segmind_queue) with the same request.

Waits for the task and answers with the image's bytes (`image/jpeg`), or, with `"base64": true`,
JSON `{image, images, seed}`. Refusals are `{"error": message, "fields": [...]}` with Segmind's
status codes: 400 bad parameters, 404 model not served, 429 queue full, 500 failed, 504 timeout.
"""

from __future__ import annotations

import base64
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from latentcast.client.wire import DEFAULT_SCHEDULER, SEGMIND_DEFAULT_SCHEDULER, SEGMIND_SCHEDULERS
from latentcast.server.compat.common import (
    HTTP_STATUS, Refusal, as_data_url, endpoint, finish, json_body, output_bytes, parse, start,
)

MODEL = "stable-diffusion-3-medium"
SLUG = f"{MODEL}-txt2img"
NAMES = {
    "width": "img_width",
    "height": "img_height",
    "num_images": "samples",
    "shift": "modelsamplingsd3_shift",
    "strength": "denoise",
}
_STATUS = {**HTTP_STATUS, "model": 404}


class Txt2ImgRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    prompt: str
    negative_prompt: str = ""
    samples: int = Field(default=1, ge=1, le=4)
    scheduler: str = SEGMIND_DEFAULT_SCHEDULER  # any of SEGMIND_SCHEDULERS, each mapped to flow matching
    num_inference_steps: int = Field(default=25, ge=10, le=100)
    guidance_scale: float = Field(default=5, ge=1, le=25)
    seed: int = Field(default=-1, ge=-1, le=999_999_999_999_999)
    img_width: int = Field(default=1024, ge=512, le=2048, multiple_of=8)
    img_height: int = Field(default=1024, ge=512, le=2048, multiple_of=8)
    modelsamplingsd3_shift: float = Field(default=3, ge=1, le=10)
    # image-to-image: the picture as base64 (or a data URL; never a URL: the server fetches nothing),
    # and `denoise` is then its strength
    image: str | None = None
    denoise: float = Field(default=1, ge=0.1, le=1)
    # accepted and range-checked; see docs/compatibility.md for why they change nothing here
    conditioningsettimesteprange_start: float = Field(default=0.1, ge=0.1, le=1)
    conditioningsettimesteprange_stop: float = Field(default=1, ge=0.1, le=1)
    base64: bool = False

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, name: str) -> str:
        if name not in SEGMIND_SCHEDULERS:
            raise PydanticCustomError(
                "unknown_scheduler",
                "'{name}' is not a Segmind scheduler; use one of: {supported}",
                {"name": name, "supported": ", ".join(SEGMIND_SCHEDULERS)},
            )
        return name

    @field_validator("conditioningsettimesteprange_stop")
    @classmethod
    def _range(cls, stop: float, info: ValidationInfo) -> float:
        begin = info.data.get("conditioningsettimesteprange_start")
        if begin is not None and begin > stop:
            raise PydanticCustomError("range_order", "must not be below conditioningsettimesteprange_start")
        return stop


def render(refusal: Refusal) -> Response:
    body: dict[str, object] = {"error": refusal.message}
    if refusal.fields:
        body["fields"] = refusal.fields
    return JSONResponse(body, status_code=_STATUS[refusal.kind], headers=refusal.headers)


def task_params(body: Txt2ImgRequest) -> dict[str, Any]:
    """The native task a Segmind request asks for."""
    params: dict[str, Any] = {
        "prompt": body.prompt,
        "negative_prompt": body.negative_prompt,
        "model": MODEL,
        "width": body.img_width,
        "height": body.img_height,
        "num_inference_steps": body.num_inference_steps,
        "guidance_scale": body.guidance_scale,
        "num_images": body.samples,
        "seed": None if body.seed == -1 else body.seed,
        "output_format": "jpeg",
        "scheduler": SEGMIND_SCHEDULERS[body.scheduler],
        "shift": body.modelsamplingsd3_shift,
    }
    if body.image is None:
        return params
    params |= {"image": as_data_url(body.image), "strength": body.denoise}
    if "scheduler" not in body.model_fields_set:
        params["scheduler"] = DEFAULT_SCHEDULER  # Segmind's default is no flow_match_euler, which an image needs
    if not {"img_width", "img_height"} & body.model_fields_set:
        del params["width"], params["height"]  # the image's own size
    return params



@endpoint(render)
async def txt2img(request: Request) -> Response:
    body = parse(Txt2ImgRequest, await json_body(request))
    record = await finish(request, await start(request, task_params(body), NAMES))
    images = await output_bytes(request, record)
    headers = {"X-Task-Id": record.id, "X-Seed": str(record.seed)}
    if not body.base64:
        return Response(images[0], media_type=record.outputs[0]["contenttype"], headers=headers)
    encoded = [base64.b64encode(image).decode("ascii") for image in images]
    return JSONResponse({"image": encoded[0], "images": encoded, "seed": record.seed}, headers=headers)


routes = [Route(f"/v1/{SLUG}", txt2img, methods=["POST"])]
