"""1a. Service overhead: one task through the whole service vs the bare `pipe(...)` call.

Both use the same model (the service's worker process loads it, this process loads it again for
the bare call: the builtin model is byte-identical when rebuilt), with the same prompt, size,
steps, guidance and seed. The service run is timed from just before `POST /v1/tasks` until a WebSocket
subscriber (binary previews, the socket's default) has received the terminal event, with a preview
after every step (`preview_every` 1, `--preview-min-interval 0`): HTTP, validation, the SQLite
store, the queue, the worker's device thread, every event recorded and pushed, the PNG output
written. The service runs as `latentcast serve` does: the API in this process's event loop, the
worker in a process of its own. The bare run is `pipe(prompt=..., generator=...)` returning a PIL
image, on a thread of this process. Runs alternate (bare, service, bare, service, ...) so drift in the
machine's load hits both; the report gives medians, the ratio of medians, and the median of each
service run's ratio to the bare run just before it. The two runs' images must be identical. It
also times saving the bare call's picture as the service does (PNG, to a file), since a caller who
keeps the picture pays that too: "extra vs bare+save", the figure the targets are judged on.

    python -m bench.overhead                      # 256 and 1024 px, 28 steps, 5 and 3 pairs
    python -m bench.overhead --sizes 256 --repeats 9
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets

from bench.common import Report, is_terminal, median, parser
from harness.processes import free_port
from latentcast.wire import decode_frame

PROMPT = "a lighthouse at dusk, oil on canvas"
SEED = 1234
TARGETS = {256: 0.10, 1024: 0.02}  # the limits on extra time


class InProcessService:
    """The app from `server.app.create_app`, served by uvicorn on a loopback port in this event loop."""

    def __init__(self, data_dir: Path) -> None:
        from latentcast.server.config import Settings

        self.port = free_port()
        self.settings = Settings(
            data_dir=data_dir, port=self.port, model="builtin:tiny", preview_min_interval=0.0, max_queue=100_000
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/v1/ws"

    async def __aenter__(self) -> InProcessService:
        import uvicorn

        from latentcast.server.api.frame_writer import serving_protocol
        from latentcast.server.app import create_app

        self.app = create_app(self.settings)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, ws=serving_protocol(), log_level="warning",
            access_log=False, lifespan="on", ws_per_message_deflate=False,  # as `latentcast serve` runs it
        )
        self.server = uvicorn.Server(config)
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 30)

    def load_pipe(self) -> Any:
        """The service's model, loaded in this process for the bare call (its worker has its own)."""
        from latentcast.server.engine.loader import load_pipeline

        settings = self.settings
        return load_pipeline(settings.model, data_dir=settings.data_dir, device=settings.device, dtype=settings.dtype).pipe


def bare_run(pipe: Any, size: int, steps: int, guidance: float) -> tuple[float, float, Any]:
    """The bare call's seconds; then the seconds to also save its picture as the service does (PNG)."""
    import torch

    from latentcast.client.image_info import GenerationInfo
    from latentcast.server.engine.runner import _encode_output

    generator = torch.Generator(device="cpu").manual_seed(SEED)
    began = time.perf_counter()
    with torch.inference_mode():
        image = pipe(
            prompt=PROMPT, negative_prompt="", width=size, height=size, num_inference_steps=steps,
            guidance_scale=guidance, generator=generator,
        ).images[0]
    seconds = time.perf_counter() - began
    saving = time.perf_counter()
    with tempfile.NamedTemporaryFile(suffix=".png") as file:
        # the same metadata the service writes into its files, so that saving costs the same on both sides
        info = GenerationInfo(PROMPT, "", steps, guidance, SEED, size, size, "euler", "bench")
        file.write(_encode_output(image, "png", info))
    return seconds, time.perf_counter() - saving, image


async def service_run(
    service: InProcessService, http: httpx.AsyncClient, size: int, steps: int, guidance: float
) -> tuple[float, dict[str, Any]]:
    body = {
        "prompt": PROMPT, "width": size, "height": size, "num_inference_steps": steps, "guidance_scale": guidance,
        "seed": SEED, "preview_every": 1, "preview_method": "latent2rgb", "preview_format": "jpeg",
    }
    began = time.perf_counter()
    response = await http.post("/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    task = response.json()
    frames = previews = 0
    async with websockets.connect(service.ws_url, max_size=None) as ws:
        await ws.send(orjson.dumps({"type": "subscribe", "id": task["id"], "token": task["token"]}).decode())
        while True:
            event, image = decode_frame(await ws.recv())
            previews += image is not None
            frames += 1
            if "seq" in event and is_terminal(event):
                break
    seconds = time.perf_counter() - began
    assert event["type"] == "task_postprocess_end", event
    return seconds, {"task": task, "outputs": event["message"], "frames": frames, "previews": previews}


def preview_seconds() -> float:
    from latentcast.server.observability import metrics

    return sum(
        sample.value
        for family in metrics.preview_duration.collect()
        for sample in family.samples
        if sample.name.endswith("_sum")
    )


async def run(args: Any, report: Report) -> None:
    from PIL import Image

    device = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bare")
    loop = asyncio.get_running_loop()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="latentcast-bench-") as folder:
        async with InProcessService(Path(folder)) as service, httpx.AsyncClient(base_url=service.url, timeout=600) as http:
            pipe = await loop.run_in_executor(device, service.load_pipe)
            for size, repeats in zip(args.sizes, args.repeats_per_size):
                report.line(f"-- {size}x{size} px, {args.steps} steps, guidance {args.guidance}, previews every step")
                # A warm-up pair (first-call costs: allocator, previewer, socket), not counted.
                await loop.run_in_executor(device, bare_run, pipe, size, args.steps, args.guidance)
                await service_run(service, http, size, args.steps, args.guidance)
                rows, bare, full, ratios, preview_share, saved_ratios, saving = [], [], [], [], [], [], []
                identical = True
                for index in range(repeats):
                    seconds_bare, seconds_save, image = await loop.run_in_executor(
                        device, bare_run, pipe, size, args.steps, args.guidance
                    )
                    before = preview_seconds()
                    seconds_service, detail = await service_run(service, http, size, args.steps, args.guidance)
                    spent_previewing = preview_seconds() - before
                    output = (await http.get(detail["outputs"][0]["url"])).content
                    same = Image.open(io.BytesIO(output)).convert("RGB").tobytes() == image.convert("RGB").tobytes()
                    identical &= same
                    bare.append(seconds_bare)
                    full.append(seconds_service)
                    ratios.append(seconds_service / seconds_bare - 1)
                    saving.append(seconds_save)
                    saved_ratios.append(seconds_service / (seconds_bare + seconds_save) - 1)
                    preview_share.append(spent_previewing / seconds_bare)
                    rows.append([index + 1, seconds_bare, seconds_service, f"{100 * ratios[-1]:+.2f}%",
                                 f"{1000 * seconds_save:.1f}", f"{100 * saved_ratios[-1]:+.2f}%",
                                 f"{1000 * spent_previewing / args.steps:.2f}", detail["previews"], "yes" if same else "NO"])
                report.table(["run", "bare s", "service s", "extra", "PNG save ms", "extra vs bare+save",
                              "preview ms/step", "previews", "same image"], rows)
                extra_of_medians = median(full) / median(bare) - 1
                paired = median(ratios)
                report.line(
                    f"   median bare {median(bare):.3f}s, service {median(full):.3f}s: {100 * extra_of_medians:+.2f}% "
                    f"(median of paired runs {100 * paired:+.2f}%; previews alone {100 * median(preview_share):.2f}%; "
                    f"vs a bare call that also saves its PNG {100 * median(saved_ratios):+.2f}%)"
                )
                results[str(size)] = {
                    "steps": args.steps, "bare_seconds": bare, "service_seconds": full,
                    "bare_median": median(bare), "service_median": median(full),
                    "extra_of_medians": extra_of_medians, "extra_paired_median": paired,
                    "preview_share_median": median(preview_share), "identical_images": identical,
                    "png_save_seconds_median": median(saving), "extra_vs_bare_and_save_paired_median": median(saved_ratios),
                }
                if size in TARGETS and not args.smoke:
                    report.target(
                        f"extra time vs bare + save at {size} px", round(100 * median(saved_ratios), 2), 100 * TARGETS[size], "%"
                    )
    device.shutdown()
    report.data["sizes"] = results


def main() -> None:
    parse = parser(__doc__.split("\n\n")[0])
    parse.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parse.add_argument("--repeats", type=int, nargs="+", default=None, help="pairs per size (default 5 at 256, 3 above)")
    parse.add_argument("--steps", type=int, default=28)
    parse.add_argument("--guidance", type=float, default=7.0)
    args = parse.parse_args()
    if args.smoke:
        args.sizes, args.steps, args.repeats = [64], 2, [1]
    if args.repeats is None:
        args.repeats = [5 if size <= 256 else 3 for size in args.sizes]
    elif len(args.repeats) == 1:
        args.repeats = args.repeats * len(args.sizes)
    args.repeats_per_size = args.repeats
    from latentcast.server.engine.loader import quiet_libraries

    quiet_libraries()
    report = Report("overhead", "1a. service overhead: a task through the service vs the bare pipe(...) call")
    asyncio.run(run(args, report))
    report.finish(args.json)


if __name__ == "__main__":
    main()
