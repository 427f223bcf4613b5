"""The native request body of `POST /v1/tasks`, validated by pydantic.

The compatibility endpoints translate their providers' bodies into this one model, so every
rule about what a generation may ask for lives here once.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from latentcast.client.wire import DEFAULT_SCHEDULER, EventType, PreviewFormat, PreviewMethod, SchedulerName

MAX_SEED = 2**63 - 1
# C0 control characters other than tab, newline and carriage return: no prompt needs them, and NUL
# in particular is cut off or refused by C libraries, terminals and log readers downstream.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# SD3's VAE downsamples by 8, so sizes step by 8. (The transformer patches 2x2 latents, so the
# pipeline needs multiples of 16: the runner generates the next multiple of 16 and centre-crops.)
SIZE_MULTIPLE = 8
# How much of an input image's schedule runs when a request gives no strength (diffusers' default).
DEFAULT_STRENGTH = 0.6
MAX_MASK_BLUR = 64
IMAGE_SOURCE = "a base64 data URL (data:image/png;base64,...) or an upload id from POST /v1/uploads"


class Limits(BaseModel):
    """Operator limits on what one task may ask for (also shown in the OpenAPI description)."""

    max_prompt_chars: int = 4000
    max_pixels: int = 2048 * 2048
    max_steps: int = 100
    max_images: int = 4


class TaskParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    prompt: str = Field(min_length=1, max_length=4000)
    negative_prompt: str = Field(default="", max_length=4000)
    model: str | None = Field(default=None, description="a served model or one of its aliases")
    width: int = Field(default=1024, ge=64, le=2048, multiple_of=SIZE_MULTIPLE)
    height: int = Field(default=1024, ge=64, le=2048, multiple_of=SIZE_MULTIPLE)
    num_inference_steps: int = Field(
        default=28, ge=1, le=1000, description="at most 100 unless the operator allows more (--max-steps)"
    )
    guidance_scale: float = Field(default=7.0, ge=0.0, le=30.0)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, description="omitted: a random seed, recorded")
    num_images: int = Field(default=1, ge=1, le=4)
    output_format: Literal["png", "jpeg", "webp"] = "png"
    preview_method: PreviewMethod = "latent2rgb"
    preview_every: int = Field(default=1, ge=1, le=100, description="a preview every N steps")
    preview_format: PreviewFormat = "jpeg"
    # the flow-matching configurations of server.engine.schedulers; the default is every SD3 model's own
    scheduler: SchedulerName = DEFAULT_SCHEDULER
    shift: float | None = Field(default=None, gt=0, le=100, description="sigma shift; omitted: the model's own")
    # Image-to-image and inpainting (the pictures themselves are kept beside the params, not in them)
    strength: float | None = Field(
        default=None, ge=0.0, le=1.0, description="with an image: how much of the schedule is run, "
        f"ceil(strength x num_inference_steps) steps, at least one (1.0 is text-to-image); default {DEFAULT_STRENGTH}",
    )
    mask_blur: int = Field(
        default=0, ge=0, le=MAX_MASK_BLUR, description="with a mask: its Gaussian blur radius in pixels, "
        "softening the seam where the result is laid over the input",
    )

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, prompt: str) -> str:
        if not prompt.strip():
            raise PydanticCustomError("not_blank", "prompt must not be blank")
        return prompt

    @field_validator("prompt", "negative_prompt")
    @classmethod
    def _no_control_characters(cls, text: str) -> str:
        found = _CONTROL.search(text)
        if found is not None:
            raise PydanticCustomError(
                "control_characters",
                "control character {code} is not allowed (only tab, newline and carriage return are)",
                {"code": f"U+{ord(found.group()):04X}"},
            )
        return text


class TaskRequest(TaskParams):
    """The whole body of `POST /v1/tasks`: the task's parameters, and where its events go. Only the
    parameters are the task's `params`; the webhook is kept beside them (server.tasks.outbox)."""

    image: str | None = Field(
        default=None, description=f"image-to-image: the picture to start from, {IMAGE_SOURCE} (multipart: a file)",
    )
    mask: str | None = Field(
        default=None, description=f"inpainting: white is repainted, black kept; {IMAGE_SOURCE}, of the image's size",
    )
    webhook: str | None = Field(
        default=None, description="an http(s) URL of a public host: the task's events are POSTed there, signed "
        "(docs/webhooks.md)",
    )
    webhook_events: list[EventType] | None = Field(
        default=None, min_length=1, description="which events the webhook gets (a `task_error` only when it ends "
        "the task; `task_progress` at most once a second, and the last step); default: the one that ends the task",
    )

    def task_params(self) -> TaskParams:
        return TaskParams.model_validate(self.model_dump(exclude={"webhook", "webhook_events", "image", "mask"}))


def check_limits(params: TaskParams, limits: Limits) -> list[tuple[str, str, str]]:
    """Operator limits beyond the model's own bounds, as (field, rule, message) triples."""
    problems = []
    if len(params.prompt) > limits.max_prompt_chars:
        problems.append(("prompt", "string_too_long", f"prompt is longer than {limits.max_prompt_chars} characters"))
    if params.width * params.height > limits.max_pixels:
        problems.append(
            ("width", "max_pixels", f"width x height must be at most {limits.max_pixels} pixels on this server")
        )
    if params.num_inference_steps > limits.max_steps:
        problems.append(("num_inference_steps", "less_than_equal", f"num_inference_steps must be at most {limits.max_steps}"))
    if params.num_images > limits.max_images:
        problems.append(("num_images", "less_than_equal", f"num_images must be at most {limits.max_images}"))
    return problems


def with_inputs(params: TaskParams, *, image: bool, mask: bool) -> tuple[TaskParams, list[tuple[str, str, str]]]:
    """`params` with the strength an image task runs at, or the problems of a request whose image
    fields do not go together, as (field, rule, message) triples."""
    problems = []
    if not image:
        if params.strength is not None:
            problems.append(("strength", "requires_image", "strength: needs an image to start from"))
        if mask:
            problems.append(("mask", "requires_image", "mask: needs the image it was painted on"))
        return params, problems
    if not mask and params.mask_blur:
        problems.append(("mask_blur", "requires_mask", "mask_blur: needs a mask to blur"))
    if not params.scheduler.startswith("flow_match_euler"):
        # Only FlowMatchEuler can noise a picture to the sigma a strength starts at (`scale_noise`).
        problems.append(
            ("scheduler", "image_scheduler", "scheduler: a task with an image runs on a flow_match_euler scheduler")
        )
    if params.strength is None:
        params = params.model_copy(update={"strength": DEFAULT_STRENGTH})
    return params, problems


def image_steps(strength: float, steps: int) -> int:
    """How many of `steps` an image task runs at `strength`: the last ceil(strength x steps) of the
    schedule, as diffusers' image-to-image counts them, and at least one (a strength too small for
    a whole step still runs the last, lightest one)."""
    return min(steps, max(1, math.ceil(strength * steps - 1e-9)))
