"""One generation, run in the worker thread: encode the prompt, denoise, decode, store.

The pipeline's step callback does only cheap work (a preview of the denoised estimate, the
cancel check) and hands what it made to the event loop without waiting for it, so no client,
however slow, can slow the denoising. Every event of a run, up to its terminal one, is reported
here, in order, through `Reports`: a step's whole report (its progress, its log line, how long its
preview took) in one `step` call, so that it crosses to the loop as one item
(server.engine.event_pump).
"""

from __future__ import annotations

import dataclasses
import io
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from latentcast.client.image_info import GenerationInfo
from latentcast.server.engine.image_runs import StartLatents, plan_run
from latentcast.server.engine.loader import LoadedModel
from latentcast.server.engine.previews import Previewer, denoised_estimate, encode_image
from latentcast.server.engine.schedulers import configure_scheduler
from latentcast.server.protocol.events import EncodedPreview, EventType
from latentcast.server.tasks.record import TaskRecord


@dataclasses.dataclass(frozen=True, slots=True)
class PreviewTime:
    """How long one preview took to draw and encode, for the metrics."""

    method: str
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class StepReport:
    """Everything one denoising step tells: its `task_progress` message (with its preview, when one
    was drawn), its `task_output` log line, and how long the preview took."""

    progress: dict[str, Any]
    preview: EncodedPreview | None
    log_line: str
    preview_time: PreviewTime | None


class Reports(Protocol):
    """Where a run's reports go, called on the device thread: each returns at once, never waiting
    for the event loop, the store or a client."""

    def emit(self, type_: str, message: Any) -> None:
        """The task's next event (any but a step's)."""
        ...

    def step(self, report: StepReport) -> None: ...

    def save(self, name: str, data: bytes) -> str:
        """Keep an output and return its URL. The bytes are stored after the events reported before
        and before those reported after, so an output is stored before the event that names it,
        and only while the run still owns its task (fenced like the events)."""
        ...

_CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


class Interrupted(Exception):
    """Raised from the step callback to stop denoising: diffusers' `_interrupt` would still decode."""


@dataclasses.dataclass
class StopSignal:
    """Set from the event loop, read from the step callback."""

    reason: str = ""
    requeue: bool = False
    _flag: threading.Event = dataclasses.field(default_factory=threading.Event)

    def set(self, reason: str, *, requeue: bool = False) -> None:
        self.reason, self.requeue = reason, requeue
        self._flag.set()

    def is_set(self) -> bool:
        return self._flag.is_set()


@dataclasses.dataclass(frozen=True, slots=True)
class PreviewSettings:
    method: str
    every: int
    format: str
    min_interval: float


class _Log:
    """The task's output log: every line goes out as `task_output` and again, whole, at the end."""

    def __init__(self, reports: Reports) -> None:
        self.reports = reports
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        self.reports.emit(EventType.OUTPUT, self.kept(text))

    def kept(self, text: str) -> str:
        """`text` kept for the whole log, for a caller that reports its line itself (a step)."""
        self.lines.append(text)
        return text

    def close(self) -> None:
        self.reports.emit(EventType.OUTPUT_FULL, "\n".join(self.lines))


class _StepWatcher:
    """The `callback_on_step_end` of one run: progress, throttled previews, cancellation."""

    def __init__(
        self,
        reports: Reports,
        log: _Log,
        stop: StopSignal,
        steps: int,
        start: StartLatents,
        image_size: tuple[int, int],
        previewer: Previewer | None,
        preview: PreviewSettings,
    ) -> None:
        self.reports = reports
        self.log = log
        self.stop = stop
        self.steps = steps
        self.start = start
        self.previous: torch.Tensor | None = None  # the latents the last step began from
        self.image_size = image_size  # (width, height) of the task's images: what a preview stands for
        self.previewer = previewer
        self.preview = preview
        self.started = time.perf_counter()
        self.last_preview = float("-inf")

    def __call__(self, pipe: Any, i: int, t: Any, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        _stop_if_asked(self.stop)
        latents = tensors["latents"]
        step = i + 1
        now = time.perf_counter()
        rate = step / (now - self.started)
        message: dict[str, Any] = {
            "step": step,
            "steps": self.steps,
            "percent": round(100 * step / self.steps, 1),
            "eta_seconds": round((self.steps - step) / rate, 3),
            "it_per_s": round(rate, 2),
        }
        preview, spent = None, None
        # The scheduler has just stepped from sigmas[at - 1] to sigmas[at]; an image task's schedule
        # begins part of the way down, so `i` does not index it.
        sigmas, at = pipe.scheduler.sigmas, pipe.scheduler.step_index
        sigma_from, sigma_to = float(sigmas[at - 1]), float(sigmas[at])
        if self.previous is None:
            self.previous = self.start.at(sigma_from)
        if self.previewer is not None and self._preview_due(step, now):
            x0 = denoised_estimate(self.previous, latents, sigma_from, sigma_to)
            image = self.previewer(x0[:1])[0]  # the first image of a batch is the one shown
            data = encode_image(image, self.preview.format)
            preview = EncodedPreview(self.preview.format, image.width, image.height, *self.image_size, data)
            self.last_preview = now
            spent = PreviewTime(self.preview.method, time.perf_counter() - now)
        self.previous = latents
        self.reports.step(StepReport(message, preview, self.log.kept(f"Step {step}/{self.steps}"), spent))
        return {}

    def _preview_due(self, step: int, now: float) -> bool:
        if step == self.steps:
            return True  # the last estimate is the picture the run ends on
        return step % self.preview.every == 0 and now - self.last_preview >= self.preview.min_interval


def run_generation(
    record: TaskRecord,
    model: LoadedModel,
    reports: Reports,
    stop: StopSignal,
    *,
    preview_min_interval: float,
    previewer_for: Callable[[str], Previewer | None],
    inputs: Mapping[str, bytes] | None = None,
) -> None:
    """Run one task from preprocessing to its terminal event. Raises `Interrupted` only to re-queue.
    `inputs` are the pictures an image task starts from ("image", and "mask" to inpaint)."""
    params = record.params
    preview = PreviewSettings(
        params.preview_method, params.preview_every, params.preview_format, preview_min_interval
    )
    pipe = model.pipe
    log = _Log(reports)
    try:
        reports.emit(EventType.PREPROCESS_START, {})
        began = time.perf_counter()
        guided = params.guidance_scale > 1.0
        with torch.inference_mode():
            prompt_embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
                # the one prompt to each of SD3's three encoders (what diffusers makes of None too)
                prompt=params.prompt,
                prompt_2=params.prompt,
                prompt_3=params.prompt,
                negative_prompt=params.negative_prompt,
                do_classifier_free_guidance=guided,
                num_images_per_prompt=params.num_images,
                device=pipe._execution_device,
                max_sequence_length=model.settings.max_sequence_length,
            )
        reports.emit(EventType.PREPROCESS_END, {"seconds": round(time.perf_counter() - began, 4)})
        reports.emit(EventType.ASSIGN, {"device": model.device})

        width, height, count = params.width, params.height, params.num_images
        padded = (_padded(pipe, width), _padded(pipe, height))
        generator = torch.Generator(device="cpu").manual_seed(record.seed)
        scale = pipe.vae_scale_factor
        noise = randn_tensor(
            (count, pipe.transformer.config.in_channels, padded[1] // scale, padded[0] // scale),
            generator=generator,
            device=torch.device(model.device),
            dtype=prompt_embeds.dtype,
        )
        configure_scheduler(pipe, params.scheduler, params.shift)  # (before `from_pipe` shares it)
        run = plan_run(pipe, params, inputs, padded, noise, record.seed)
        steps = run.steps
        started = {"steps": steps, "seed": record.seed, "width": width, "height": height, "images": count}
        reports.emit(EventType.START, started)
        log.line(f"Generating {count} image(s) of {width}x{height} in {steps} steps with seed {record.seed}")
        previewer = previewer_for(preview.method)
        watcher = _StepWatcher(reports, log, stop, steps, run.start, (width, height), previewer, preview)
        began = time.perf_counter()
        with torch.inference_mode():
            final = run.pipeline(
                prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_embeds if guided else None,
                pooled_prompt_embeds=pooled,
                negative_pooled_prompt_embeds=negative_pooled if guided else None,
                width=padded[0],
                height=padded[1],
                num_inference_steps=params.num_inference_steps,
                guidance_scale=params.guidance_scale,
                output_type="latent",
                callback_on_step_end=watcher,
                **run.arguments,
            ).images
            _stop_if_asked(stop)  # a cancel that came after the last step still wins over the decode
            images = [_cropped(image, width, height) for image in _decode(pipe, final)]
            images = [run.laid_over(image) for image in images]
        _stop_if_asked(stop)
        seconds = time.perf_counter() - began
        log.line(f"Denoised in {seconds:.3f}s ({steps / seconds:.2f} it/s)")
        log.close()
        reports.emit(EventType.END, {"seconds": round(seconds, 4)})

        reports.emit(EventType.POSTPROCESS_START, {})
        fmt = params.output_format
        outputs = []
        for index, image in enumerate(images):
            name = f"{index}.{'jpg' if fmt == 'jpeg' else fmt}"
            data = _encode_output(image, fmt, _generation_info(record, index))
            url = reports.save(name, data)
            outputs.append(
                {
                    "name": name,
                    "contenttype": _CONTENT_TYPES[fmt],
                    "size": len(data),
                    "url": url,
                    "width": image.width,
                    "height": image.height,
                    "seed": record.seed,
                }
            )
        reports.emit(EventType.POSTPROCESS_END, outputs)
    except Interrupted as stopped:
        if stop.requeue:
            raise
        log.line(f"Cancelled: {stopped}")
        log.close()
        reports.emit(EventType.CANCEL, {"reason": str(stopped)})
    except Exception as failure:  # the task fails; the worker lives on
        text = f"{type(failure).__name__}: {failure}"
        log.close()
        reports.emit(EventType.ERROR_FULL, text)
        reports.emit(EventType.ERROR, {"code": "generation_failed", "message": text, "fatal": True})


def _padded(pipe: Any, size: int) -> int:
    """The pipeline takes multiples of the VAE's scale times the transformer's patch (8 x 2 = 16 in
    SD3); a size between them is generated larger and centre-cropped."""
    step = pipe.vae_scale_factor * pipe.transformer.config.patch_size
    return -(-size // step) * step


def _cropped(image: Image.Image, width: int, height: int) -> Image.Image:
    """The centre `width` x `height` of a padded generation (the image itself when it fits)."""
    if image.size == (width, height):
        return image
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def _stop_if_asked(stop: StopSignal) -> None:
    if stop.is_set():
        raise Interrupted(stop.reason)


def _decode(pipe: Any, latents: torch.Tensor) -> list[Image.Image]:
    latents = latents / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
    decoded = pipe.vae.decode(latents.to(pipe.vae.dtype), return_dict=False)[0]
    return pipe.image_processor.postprocess(decoded, output_type="pil")


def _generation_info(record: TaskRecord, index: int) -> GenerationInfo:
    """What an output carries in its file: the request as run, so that the image can be made again."""
    params = record.params
    return GenerationInfo(
        prompt=params.prompt,
        negative_prompt=params.negative_prompt,
        steps=params.num_inference_steps,
        guidance_scale=params.guidance_scale,
        seed=record.seed,
        width=params.width,
        height=params.height,
        scheduler=params.scheduler,
        model=record.model,
        shift=params.shift,
        batch_size=params.num_images,
        batch_position=index,
    )


def _encode_output(image: Image.Image, fmt: str, info: GenerationInfo) -> bytes:
    buffer = io.BytesIO()
    embedded = info.save_options(fmt)
    if fmt == "png":
        image.save(buffer, format="PNG", **embedded)
    elif fmt == "jpeg":
        image.save(buffer, format="JPEG", quality=92, **embedded)
    else:
        image.save(buffer, format="WEBP", quality=92, **embedded)
    return buffer.getvalue()
