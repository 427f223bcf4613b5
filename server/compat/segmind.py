"""Segmind: `POST /v1/stable-diffusion-3-medium-txt2img` (provider-docs 003).

Waits for the task and answers with the image's bytes (`image/jpeg`), or, with `"base64": true`,
JSON `{image, images, seed}`. Refusals are `{"error": message, "fields": [...]}` with Segmind's
status codes: 400 bad parameters, 404 model not served, 429 queue full, 500 failed, 504 timeout.
"""

from __future__ import annotations

import base64

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from latentcast.server.compat.common import HTTP_STATUS, Refusal, endpoint, finish, json_body, output_bytes, parse, start

MODEL = "stable-diffusion-3-medium"
# Segmind's sampler names that have a flow-matching counterpart here (server.engine.schedulers).
# The others (Karras, SDE and ancestral variants, DDIM, LMS, DPM2, ...) are epsilon/VP samplers
# that do not fit SD3's flow matching, and are refused by name.
SCHEDULERS = {"DPM++ 2M": "dpmpp_2m", "Euler": "flow_match_euler", "UniPC": "unipc"}
NAMES = {
    "width": "img_width",
    "height": "img_height",
    "num_images": "samples",
    "shift": "modelsamplingsd3_shift",
}
_STATUS = {**HTTP_STATUS, "model": 404}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    prompt: str
    negative_prompt: str = ""
    samples: int = Field(default=1, ge=1, le=4)
    scheduler: str = "DPM++ 2M"
    num_inference_steps: int = Field(default=25, ge=10, le=100)
    guidance_scale: float = Field(default=5, ge=1, le=25)
    seed: int = Field(default=-1, ge=-1, le=999_999_999_999_999)
    img_width: int = Field(default=1024, ge=512, le=2048, multiple_of=8)
    img_height: int = Field(default=1024, ge=512, le=2048, multiple_of=8)
    modelsamplingsd3_shift: float = Field(default=3, ge=1, le=10)
    # accepted and range-checked; see docs/compatibility.md for why they change nothing here
    denoise: float = Field(default=1, ge=0.1, le=1)
    conditioningsettimesteprange_start: float = Field(default=0.1, ge=0.1, le=1)
    conditioningsettimesteprange_stop: float = Field(default=1, ge=0.1, le=1)
    base64: bool = False

    @field_validator("scheduler")
    @classmethod
    def _flow_matching(cls, name: str) -> str:
        if name not in SCHEDULERS:
            raise PydanticCustomError(
                "unsupported_scheduler",
                "'{name}' does not fit SD3's flow matching; use one of: {supported}",
                {"name": name, "supported": ", ".join(SCHEDULERS)},
            )
        return name

    @field_validator("conditioningsettimesteprange_stop")
    @classmethod
    def _range(cls, stop: float, info: ValidationInfo) -> float:
        begin = info.data.get("conditioningsettimesteprange_start")
        if begin is not None and begin > stop:
            raise PydanticCustomError("range_order", "must not be below conditioningsettimesteprange_start")
        return stop


def _render(refusal: Refusal) -> Response:
    body: dict[str, object] = {"error": refusal.message}
    if refusal.fields:
        body["fields"] = refusal.fields
    return JSONResponse(body, status_code=_STATUS[refusal.kind], headers=refusal.headers)


@endpoint(_render)
async def txt2img(request: Request) -> Response:
    body = parse(_Request, await json_body(request))
    params = {
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
        "scheduler": SCHEDULERS[body.scheduler],
        "shift": body.modelsamplingsd3_shift,
    }
    record = await finish(request, await start(request, params, NAMES))
    images = await output_bytes(request, record)
    headers = {"X-Task-Id": record.id, "X-Seed": str(record.seed)}
    if not body.base64:
        return Response(images[0], media_type=record.outputs[0]["contenttype"], headers=headers)
    encoded = [base64.b64encode(image).decode("ascii") for image in images]
    return JSONResponse({"image": encoded[0], "images": encoded, "seed": record.seed}, headers=headers)


routes = [Route(f"/v1/{MODEL}-txt2img", txt2img, methods=["POST"])]
