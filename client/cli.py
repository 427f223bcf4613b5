"""`latentcast generate` and `latentcast watch`: the client's command line (and `info`, in info_command).

    latentcast generate "a lighthouse at dusk" -o out.png --size 512x512 --steps 20
    latentcast watch TASK_ID --token TOKEN -o result.png --animation denoise.webp

Progress (queue position, then step, it/s and ETA) goes to stderr; the paths of saved files go to
stdout, one per line. Exit codes: 0 done; 1 the server refused or the task failed or was
cancelled (the server's message is printed); 2 bad arguments; 130 interrupted (Ctrl-C): `generate`
cancels its task on the server first, `watch` only stops watching.

`add_commands(subparsers)` registers the three commands on the `latentcast` parser (server/cli.py),
which runs them without the server's dependencies (`pip install latentcast` is enough).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from latentcast.client.animation import animation_format, write_animation
from latentcast.client.async_client import API_KEY_VARIABLE, DEFAULT_BASE_URL, AsyncClient, Task
from latentcast.client.errors import (
    APIConnectionError,
    AuthenticationError,
    ConflictError,
    LatentcastError,
    TaskCancelledError,
    TaskFailedError,
    ValidationError,
)
from latentcast.client.events import (
    AcceptEvent,
    AssignEvent,
    EndEvent,
    ErrorEvent,
    PostprocessStartEvent,
    PreprocessStartEvent,
    ProgressEvent,
    QueueEvent,
    StartEvent,
)
from latentcast.client.info_command import add_command as add_info_command
from latentcast.client.models import Output
from latentcast.client.progress import ProgressBar, format_seconds
from latentcast.wire import DEFAULT_SCHEDULER, PREVIEW_FORMATS, PREVIEW_METHODS, SCHEDULERS, EventType

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
CANCEL_WAIT_SECONDS = 10.0

FORMAT_SUFFIXES = {"png": (".png",), "jpeg": (".jpg", ".jpeg"), "webp": (".webp",)}
SUFFIX_FORMATS = {suffix: fmt for fmt, suffixes in FORMAT_SUFFIXES.items() for suffix in suffixes}


class UsageError(Exception):
    """Arguments that do not fit together (exit code 2)."""


# -- arguments ---------------------------------------------------------------------------------


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 512x512, not {text!r}") from None
    return width, height


def _connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument(
        "--server", default=None, metavar="URL",
        help=f"the Latentcast server (default: $LATENTCAST_URL or {DEFAULT_BASE_URL})",
    )
    group.add_argument("--api-key", default=None, help=f"API key (default: ${API_KEY_VARIABLE})")
    group.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default: 60)")


def _follow_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("previews")
    group.add_argument("--previews", type=Path, default=None, metavar="DIR", help="save each preview frame in DIR")
    group.add_argument(
        "--animation", type=Path, default=None, metavar="FILE",
        help="write an animated .webp or .gif of the denoising (the previews, then the result)",
    )
    group.add_argument("--frame-ms", type=int, default=120, help="milliseconds per animation frame (default: 120)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress display")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `generate`, `watch` and `info` on a subparsers object (each sets `run` to its handler)."""
    generate = commands.add_parser(
        "generate",
        help="generate images on a Latentcast server, with live progress",
        description="Submit a prompt, show its progress, and save the images. Ctrl-C cancels the task.",
    )
    generate.add_argument("prompt", help="what to draw")
    generate.add_argument(
        "-o", "--output", type=Path, default=None,
        help="where to save (default: TASK_ID.EXT); several images are saved as NAME-0.EXT, NAME-1.EXT, ...",
    )
    generate.add_argument("--negative", default=None, metavar="TEXT", help="negative prompt")
    generate.add_argument("--size", type=_size, default=None, metavar="WxH", help="image size, e.g. 512x512")
    generate.add_argument("--steps", type=int, default=None, help="denoising steps")
    generate.add_argument("--guidance", type=float, default=None, help="guidance scale")
    generate.add_argument("--seed", type=int, default=None, help="seed (default: random, printed)")
    generate.add_argument("--images", type=int, default=None, help="images to generate (1-4)")
    generate.add_argument("--format", choices=sorted(FORMAT_SUFFIXES), default=None, help="image format")
    generate.add_argument("--model", default=None, help="a model (or alias) the server serves")
    generate.add_argument("--scheduler", default=None, choices=SCHEDULERS, help=f"default {DEFAULT_SCHEDULER}")
    generate.add_argument("--shift", type=float, default=None, help="sigma shift (default: the model's own)")
    generate.add_argument("--preview-method", default=None, choices=PREVIEW_METHODS)
    generate.add_argument("--preview-every", type=int, default=None, metavar="N", help="a preview every N steps")
    generate.add_argument("--preview-format", default=None, choices=PREVIEW_FORMATS, help="how previews are encoded")
    generate.add_argument("--image", type=Path, default=None, metavar="FILE", help="start from this picture (image-to-image)")
    generate.add_argument("--mask", type=Path, default=None, metavar="FILE", help="repaint its white pixels (inpainting; needs --image)")
    generate.add_argument("--strength", type=float, default=None, help="with --image, 0-1: how much changes (default 0.6)")
    generate.add_argument("--mask-blur", type=int, default=None, metavar="PX", help="with --mask: soften its edge by PX pixels")
    generate.add_argument(
        "--webhook", default=None, metavar="URL",
        help="also POST the task's end (or the --webhook-event events) to this URL, signed (docs/webhooks.md)",
    )
    generate.add_argument(
        "--webhook-event", action="append", default=None, choices=list(EventType), metavar="TYPE",
        help="an event type the webhook gets (repeatable; default: the one that ends the task)",
    )
    _follow_options(generate)
    _connection_options(generate)
    generate.set_defaults(run=run_generate)

    watch = commands.add_parser(
        "watch",
        help="follow a task that was already submitted (needs its token)",
        description="Follow an existing task's events with a progress bar; -o saves its images.",
    )
    watch.add_argument("task_id", metavar="TASK_ID")
    watch.add_argument("--token", default=None, help="the task's token")
    watch.add_argument("-o", "--output", type=Path, default=None, help="save the images here (NAME-0.EXT ... for several)")
    _follow_options(watch)
    _connection_options(watch)
    watch.set_defaults(run=run_watch)
    add_info_command(commands)


# -- shared work -------------------------------------------------------------------------------


@dataclasses.dataclass
class Frames:
    """Preview frames as they arrive: saved to a folder and/or kept for an animation."""

    directory: Path | None
    keep: bool
    data: list[bytes] = dataclasses.field(default_factory=list)

    @property
    def wanted(self) -> bool:
        return self.directory is not None or self.keep

    def add(self, event: ProgressEvent) -> None:
        preview = event.preview
        if preview is None:
            return
        if self.directory is not None:
            preview.save(self.directory / f"step-{event.step:03d}{preview.extension}")
        if self.keep:
            self.data.append(preview.data)


def output_paths(base: Path | None, outputs: Sequence[Output], task_id: str) -> list[Path]:
    """Where each output goes: `base` for one image, `stem-0.ext`, `stem-1.ext`, ... for several.

    Without `base` the name is the task id. The extension always matches what the file holds.
    """
    paths = []
    for index, output in enumerate(outputs):
        target = base if base is not None else Path(task_id + output.extension)
        given = target.suffix.lower()
        stem = target.stem if given in SUFFIX_FORMATS else target.name
        matches = given in SUFFIX_FORMATS and SUFFIX_FORMATS[given] == SUFFIX_FORMATS.get(output.extension.lower())
        suffix = target.suffix if matches else output.extension
        name = f"{stem}{suffix}" if len(outputs) == 1 else f"{stem}-{index}{suffix}"
        paths.append(target.with_name(name))
    return paths


async def follow(task: Task, bar: ProgressBar, frames: Frames) -> list[Output]:
    """Show the task's events on the bar until it ends; its outputs, or its typed error."""
    async for event in task.events(previews="binary" if frames.wanted else "none"):
        if isinstance(event, QueueEvent):
            bar.queued(event.position, event.queue_length)
        elif isinstance(event, AcceptEvent):
            retry = f" (attempt {event.attempt})" if event.attempt > 1 else ""
            bar.status(f"accepted by {event.worker or 'a worker'}{retry}")
        elif isinstance(event, PreprocessStartEvent):
            bar.status("encoding the prompt")
        elif isinstance(event, AssignEvent):
            bar.status(f"starting on {event.device or 'a device'}")
        elif isinstance(event, StartEvent):
            bar.status(f"{event.width}x{event.height}, {event.steps} steps, seed {event.seed}")
            if event.steps:
                bar.step(0, event.steps)
        elif isinstance(event, ProgressEvent):
            bar.step(event.step, event.steps, event.it_per_s, event.eta_seconds)
            frames.add(event)
        elif isinstance(event, EndEvent):
            bar.status(f"denoised and decoded in {format_seconds(event.seconds)}")
        elif isinstance(event, PostprocessStartEvent):
            bar.status("saving the images")
        elif isinstance(event, ErrorEvent) and not event.fatal:
            bar.note(f"warning: {event.code or 'error'}: {event.detail}")
    return await task.result()


async def save(task: Task, outputs: Sequence[Output], args: argparse.Namespace, frames: Frames, *, files: bool) -> None:
    """Save the outputs (`files`; otherwise print their URLs) and the animation; print each path."""
    saved: list[Path] = []
    if files:
        for output, path in zip(outputs, output_paths(args.output, outputs, task.id), strict=True):
            path.parent.mkdir(parents=True, exist_ok=True)
            saved.append(await task.save_output(output, path))
    else:
        for output in outputs:
            print(output.url, flush=True)
    if args.animation is not None:
        if frames.data:
            final = await task.read_output(outputs[0]) if outputs else None
            args.animation.parent.mkdir(parents=True, exist_ok=True)
            saved.append(write_animation(args.animation, frames.data, final, frame_ms=args.frame_ms))
        else:
            print("latentcast: no preview frames arrived, so no animation was written", file=sys.stderr)
    for path in saved:
        print(path, flush=True)


def report(error: BaseException, *, keyed: bool) -> int:
    """Print an error the way a user wants to read it; the exit code. `keyed`: an API key was given."""
    if isinstance(error, ValidationError) and error.fields:
        # the server's message joins the fields' messages: each is printed once, with its rule
        print("latentcast: refused:", file=sys.stderr)
        for field in error.fields:
            named = field.message if field.message.startswith(f"{field.field}: ") else f"{field.field}: {field.message}"
            print(f"  {named} (rule: {field.rule})", file=sys.stderr)
    elif isinstance(error, ValidationError):
        print(f"latentcast: refused: {error.message}", file=sys.stderr)
    elif isinstance(error, AuthenticationError) and keyed:
        print(f"latentcast: the API key (--api-key or ${API_KEY_VARIABLE}) was refused: {error.message}", file=sys.stderr)
    elif isinstance(error, AuthenticationError):
        print(
            f"latentcast: this server needs an API key: pass --api-key KEY or set ${API_KEY_VARIABLE} "
            "(its operator makes one with `latentcast keys create`)",
            file=sys.stderr,
        )
    elif isinstance(error, (TaskFailedError, TaskCancelledError)):
        print(f"latentcast: {error}", file=sys.stderr)
    elif isinstance(error, APIConnectionError):
        print(f"latentcast: {error.message}", file=sys.stderr)
    else:
        print(f"latentcast: error: {error}", file=sys.stderr)
    return EXIT_FAILED


@contextlib.contextmanager
def on_interrupt(callback: Callable[[], None]) -> Iterator[None]:
    """Call `callback` on the first SIGINT (Ctrl-C); a second one raises KeyboardInterrupt as usual."""
    loop = asyncio.get_running_loop()

    def first_interrupt() -> None:
        loop.remove_signal_handler(signal.SIGINT)
        callback()

    try:
        loop.add_signal_handler(signal.SIGINT, first_interrupt)
    except (NotImplementedError, RuntimeError):  # no signal handlers on this platform or thread
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def until_interrupted(work: asyncio.Future[Any], interrupted: asyncio.Event) -> bool:
    """Wait for `work`; True (with `work` still running) when interrupted first."""
    waiter = asyncio.ensure_future(interrupted.wait())
    try:
        await asyncio.wait([work, waiter], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    return not work.done()


def _client(args: argparse.Namespace) -> AsyncClient:
    return AsyncClient(args.server, args.api_key, timeout=args.timeout)


def _quiet_loggers() -> None:
    # `latentcast` configures INFO logging for the server; request logs would break the progress line.
    for name in ("httpx", "httpcore", "websockets", "latentcast.client"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _check_outputs(args: argparse.Namespace) -> None:
    if args.animation is not None:
        try:
            animation_format(args.animation)
        except ValueError as error:
            raise UsageError(str(error)) from None
    if args.previews is not None:
        args.previews.mkdir(parents=True, exist_ok=True)


# -- generate ----------------------------------------------------------------------------------


def _output_format(args: argparse.Namespace) -> str | None:
    """--format, or the one -o's suffix names; a mismatch between the two is a usage error."""
    chosen: str | None = args.format
    if args.output is None or not args.output.suffix:
        return chosen
    implied = SUFFIX_FORMATS.get(args.output.suffix.lower())
    if implied is None:
        raise UsageError(f"cannot tell an image format from {str(args.output)!r}; use .png, .jpg or .webp")
    if chosen is not None and chosen != implied:
        raise UsageError(f"-o {args.output} is not a {args.format} file name")
    return implied


async def generate(args: argparse.Namespace) -> int:
    _check_outputs(args)
    for flag, path in (("--image", args.image), ("--mask", args.mask)):
        if path is not None and not path.is_file():
            raise UsageError(f"{flag} {path}: no such file")
    width, height = args.size or (None, None)
    params = {
        "negative_prompt": args.negative,
        "width": width,
        "height": height,
        "num_inference_steps": args.steps,
        "guidance_scale": args.guidance,
        "seed": args.seed,
        "num_images": args.images,
        "output_format": _output_format(args),
        "model": args.model,
        "preview_method": args.preview_method,
        "preview_every": args.preview_every,
        "preview_format": args.preview_format,
        "scheduler": args.scheduler,
        "shift": args.shift,
        "image": args.image,
        "mask": args.mask,
        "strength": args.strength,
        "mask_blur": args.mask_blur,
        "webhook": args.webhook,
        "webhook_events": args.webhook_event,
    }
    bar = ProgressBar(enabled=not args.quiet)
    frames = Frames(args.previews, keep=args.animation is not None)
    interrupted = asyncio.Event()
    with on_interrupt(interrupted.set):
        async with _client(args) as client:
            submitting = asyncio.ensure_future(client.submit(args.prompt, **params))
            # An interrupt during the submit still waits for its answer, to cancel what it made.
            await until_interrupted(submitting, interrupted)
            try:
                task = await submitting
            except LatentcastError as error:
                return report(error, keyed=client.api_key is not None)
            started = time.monotonic()
            info = task.info
            seed = f", seed {info.seed}" if info is not None else ""
            bar.note(f"task {task.id}{seed} (follow it: latentcast watch {task.id} --token={task.token})")
            if interrupted.is_set():
                return await _cancel(task, bar)
            work = asyncio.ensure_future(follow(task, bar, frames))
            if await until_interrupted(work, interrupted):
                work.cancel()
                with contextlib.suppress(BaseException):
                    await work
                return await _cancel(task, bar)
            try:
                outputs = work.result()
                bar.finish(f"done in {format_seconds(time.monotonic() - started)}")
                await save(task, outputs, args, frames, files=True)
            except LatentcastError as error:
                bar.finish()
                return report(error, keyed=client.api_key is not None)
    return EXIT_OK


async def _cancel(task: Task, bar: ProgressBar) -> int:
    """Cancel the task on the server and wait (briefly) for its stream to end; exit code 130."""
    bar.finish("interrupted: cancelling the task on the server ...")
    try:
        await asyncio.wait_for(task.cancel(), CANCEL_WAIT_SECONDS)
        await asyncio.wait_for(_drain(task), CANCEL_WAIT_SECONDS)
        print(f"latentcast: task {task.id} cancelled", file=sys.stderr)
    except ConflictError:
        print(f"latentcast: task {task.id} had already ended", file=sys.stderr)
    except (LatentcastError, TimeoutError) as error:
        print(f"latentcast: could not confirm the cancel of task {task.id}: {error}", file=sys.stderr)
    return EXIT_INTERRUPTED


async def _drain(task: Task) -> None:
    with contextlib.suppress(TaskCancelledError, TaskFailedError):
        await task.result()


def run_generate(args: argparse.Namespace) -> int:
    _quiet_loggers()
    try:
        return asyncio.run(generate(args))
    except UsageError as error:
        print(f"latentcast generate: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


# -- watch -------------------------------------------------------------------------------------


async def watch(args: argparse.Namespace) -> int:
    _check_outputs(args)
    bar = ProgressBar(enabled=not args.quiet)
    frames = Frames(args.previews, keep=args.animation is not None)
    interrupted = asyncio.Event()
    with on_interrupt(interrupted.set):
        async with _client(args) as client:
            task = client.task(args.task_id, args.token)
            work = asyncio.ensure_future(follow(task, bar, frames))
            if await until_interrupted(work, interrupted):
                work.cancel()
                with contextlib.suppress(BaseException):
                    await work
                bar.finish(f"stopped watching task {task.id} (it goes on on the server)")
                return EXIT_INTERRUPTED
            try:
                outputs = work.result()
                bar.finish(f"task {task.id} done")
                await save(task, outputs, args, frames, files=args.output is not None)
            except LatentcastError as error:
                bar.finish()
                return report(error, keyed=client.api_key is not None)
    return EXIT_OK


def run_watch(args: argparse.Namespace) -> int:
    _quiet_loggers()
    try:
        return asyncio.run(watch(args))
    except UsageError as error:
        print(f"latentcast watch: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
