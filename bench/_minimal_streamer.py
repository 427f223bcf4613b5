"""The latency benchmark's baseline: the streamer a user writes when they do not pick Latentcast.

    python -m bench._minimal_streamer --model FOLDER --size 256 --steps 28 --expect N

One process: a `websockets` server on the event loop, and diffusers' `pipe()` on a thread of its
own that also loads the pipeline (torch's OpenMP keeps a thread team per thread that runs ops: one
loaded on the main thread and run on another was 1.7x slower on 2 cores). Its step
callback makes the service's default preview with the service's own code (the x0 estimate,
latent2rgb, JPEG q80) and hands the frame to `websockets.broadcast` on the loop. The frames are
Latentcast's binary preview frames, seq 1 to `--steps`, then a terminal event once the picture is
decoded and its PNG encoded, so bench._subscribers reads them as it reads the service's.

Prints `LISTENING <port>`, then `READY` once the pipeline is loaded and warmed up and `--expect`
sockets have subscribed; runs the task on a line from stdin and prints `DONE {json}` (the task's
seconds, from `pipe()` to the terminal frame); exits on the next line.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import torch
from diffusers import StableDiffusion3Pipeline
from websockets.asyncio.server import broadcast

from bench._broadcast import Subscribers, listening
from latentcast.server.engine.loader import quiet_libraries
from latentcast.server.engine.previews import Latent2RGB, denoised_estimate, encode_image
from latentcast.wire import encode_frame, envelope


def generate(
    args: argparse.Namespace, publish: Callable[[bytes | str], None], loaded: Callable[[], None], go: threading.Event
) -> float:
    """Load the pipeline, warm it up, then on `go` run the task with a preview after every step."""
    folder = Path(args.model)
    no_t5 = {} if (folder / "text_encoder_3").is_dir() else {"text_encoder_3": None, "tokenizer_3": None}
    pipe = StableDiffusion3Pipeline.from_pretrained(folder, **no_t5)
    pipe.set_progress_bar_config(disable=True)
    latent2rgb = Latent2RGB()
    with torch.inference_mode():
        pipe("warm-up", width=args.size, height=args.size, num_inference_steps=2)
    loaded()
    go.wait()
    noise = torch.randn(1, 16, args.size // 8, args.size // 8, generator=torch.Generator().manual_seed(7))
    previous = [noise]

    def on_step(pipe: StableDiffusion3Pipeline, i: int, t: object, tensors: dict) -> dict:
        sigmas = pipe.scheduler.sigmas
        x0 = denoised_estimate(previous[0], tensors["latents"], float(sigmas[i]), float(sigmas[i + 1]))
        previous[0] = tensors["latents"]
        image = latent2rgb(x0[:1])[0]
        described = {"format": "jpeg", "width": image.width, "height": image.height}
        message = {"step": i + 1, "steps": args.steps, "preview": described}
        header = envelope("task_progress", "minimal", i + 1, time.time(), message)
        publish(encode_frame(header, encode_image(image, "jpeg")))
        return {}

    began = time.time()
    with torch.inference_mode():
        picture = pipe("a lighthouse at dusk", width=args.size, height=args.size, num_inference_steps=args.steps,
                       latents=noise, callback_on_step_end=on_step).images[0]
    png = io.BytesIO()
    picture.save(png, format="PNG")
    done = envelope("task_postprocess_end", "minimal", args.steps + 1, time.time(), [{"size": png.tell()}])
    publish(orjson.dumps(done).decode())
    return time.time() - began


async def main() -> None:
    parse = argparse.ArgumentParser()
    for name, kind in (("--model", str), ("--size", int), ("--steps", int), ("--expect", int)):
        parse.add_argument(name, type=kind, required=True)
    args = parse.parse_args()
    quiet_libraries()  # no loading bars on the benchmark's report
    loop = asyncio.get_running_loop()
    subscribers = Subscribers(args.expect)

    def publish(frame: bytes | str) -> None:  # from the pipeline's thread: the loop does the sending
        loop.call_soon_threadsafe(broadcast, subscribers.sockets, frame)

    loaded, go = asyncio.Event(), threading.Event()
    async with listening(subscribers) as lines:
        on_loaded = lambda: loop.call_soon_threadsafe(loaded.set)  # noqa: E731
        task = asyncio.create_task(asyncio.to_thread(generate, args, publish, on_loaded, go))
        task.add_done_callback(lambda _: loaded.set())  # a pipeline that failed to load ends the wait too
        await asyncio.gather(subscribers.everyone.wait(), loaded.wait())
        if task.done():
            task.result()
        print("READY", flush=True)
        await lines.readline()
        go.set()
        seconds = await task
        print("DONE " + orjson.dumps({"task_seconds": seconds}).decode(), flush=True)
        await lines.readline()


if __name__ == "__main__":
    asyncio.run(main())
