"""The SD3 textToImage API: `POST /api/generate/sdv3/textToImage` (provider-docs 002), also at
`/api/generate/sd3/textToImage`, the path its own example calls.

Waits for the task and answers `{code: 0, message: "success", data: {image (base64 PNG), seed}}`;
any failure is `{code: -1, message: reason, data: null}` (HTTP 400 for a bad request, 429 queue
full, 500 failed, 504 timeout).
"""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from latentcast.server.api.context import context
from latentcast.server.compat.common import (
    HTTP_STATUS,
    Refusal,
    endpoint,
    finish,
    json_body,
    output_bytes,
    parse,
    random_seed,
    start,
)

# width:height of each `aspect_ratio`
RATIOS = {
    "16:9": (16, 9),
    "1:1": (1, 1),
    "21:9": (21, 9),
    "2:3": (2, 3),
    "3:2": (3, 2),
    "4:5": (4, 5),
    "5:4": (5, 4),
    "9:16": (9, 16),
    "9:21": (9, 21),
}
SIDE_MIN, SIDE_MAX, SIDE_STEP = 320, 1536, 64
DEFAULT_MODEL = "sd3-large"
MAX_SEED = 4_294_967_294  # Stability's range, which this API's models and enums come from


class TextToImageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    prompt: str
    width: int = Field(ge=SIDE_MIN, le=SIDE_MAX, multiple_of=SIDE_STEP)
    height: int = Field(ge=SIDE_MIN, le=SIDE_MAX, multiple_of=SIDE_STEP)
    model: Literal["sd3-large", "sd3-large-turbo", "sd3-medium"] | None = None
    aspect_ratio: Literal["16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21"] | None = None
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    negative_prompt: str = ""


def fit(width: int, height: int, ratio: str) -> tuple[int, int]:
    """The largest `ratio` image inside width x height, its sides on the API's 64 px grid."""
    across, down = RATIOS[ratio]
    if width * down <= height * across:
        return _on_grid(width), _on_grid(width * down / across)
    return _on_grid(height * across / down), _on_grid(height)


def _on_grid(side: float) -> int:
    return min(SIDE_MAX, max(SIDE_MIN, round(side / SIDE_STEP) * SIDE_STEP))


def _render(refusal: Refusal) -> Response:
    body = {"code": -1, "message": refusal.message, "data": None}
    return JSONResponse(body, status_code=HTTP_STATUS[refusal.kind], headers=refusal.headers)


@endpoint(_render)
async def text_to_image(request: Request) -> Response:
    body = parse(TextToImageRequest, await json_body(request))
    model: str | None = body.model
    if model is None and await context(request).service.catalog.serves_now(DEFAULT_MODEL):
        model = DEFAULT_MODEL  # the API's default, where it is served; else the server's own default
    width, height = (body.width, body.height) if body.aspect_ratio is None else fit(
        body.width, body.height, body.aspect_ratio
    )
    params = {
        "prompt": body.prompt,
        # the API says negative prompts do not work with sd3-large-turbo: it is left out there
        "negative_prompt": "" if model == "sd3-large-turbo" else body.negative_prompt,
        "model": model,
        "width": width,
        "height": height,
        "seed": body.seed or random_seed(1, MAX_SEED),
        "output_format": "png",
    }
    record = await finish(request, await start(request, params, {}))
    image = (await output_bytes(request, record))[0]
    data = {"image": base64.b64encode(image).decode("ascii"), "seed": record.seed}
    return JSONResponse({"code": 0, "message": "success", "data": data}, headers={"X-Task-Id": record.id})


routes = [
    Route("/api/generate/sdv3/textToImage", text_to_image, methods=["POST"]),
    Route("/api/generate/sd3/textToImage", text_to_image, methods=["POST"]),
]
