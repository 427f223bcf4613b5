"""`latentcast`: the command line. `serve` runs the service; each command says what it needs."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from server.config import Settings, default_data_dir
from server.tasks.params import Limits


def _engine_options(parser: argparse.ArgumentParser) -> None:
    engine = parser.add_argument_group("engine")
    engine.add_argument("--data-dir", type=Path, default=None, help="tasks, outputs and models (default: ~/.latentcast)")
    engine.add_argument("--public-url", default=None, help="the URL clients reach the API at, for output links")
    engine.add_argument("--model", default="builtin:tiny", help="builtin:tiny, a diffusers SD3 folder, or a hub id")
    engine.add_argument(
        "--model-alias", action="append", default=None, metavar="NAME",
        help="another name requests may use for the model (repeatable; default: the SD3 Medium names)",
    )
    engine.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps, ...")
    engine.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"])
    engine.add_argument("--taesd", type=Path, default=None, help="AutoencoderTiny folder for taesd previews")
    engine.add_argument("--preview-min-interval", type=float, default=0.1, help="seconds between previews of a task")
    engine.add_argument("--shutdown-grace", type=float, default=5.0, help="seconds a running task gets on SIGTERM")


def _backend_options(parser: argparse.ArgumentParser) -> None:
    backend = parser.add_argument_group("backend (scale-out: docs/scale-out.md)")
    backend.add_argument("--broker", default=None, metavar="redis://HOST:6379/0", help="share tasks through Redis")
    backend.add_argument("--redis-prefix", default="lc", help="prefix of every Redis key")
    backend.add_argument("--retention", type=float, default=7 * 24 * 3600, help="seconds finished tasks are kept")
    backend.add_argument(
        "--visibility-timeout", type=float, default=30.0, help="seconds before a silent worker's task is taken over"
    )
    backend.add_argument("--heartbeat", type=float, default=2.0, help="seconds between worker heartbeats")
    backend.add_argument("--outputs-dir", type=Path, default=None, help="with --broker: a shared folder for outputs")


def _serve_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = commands.add_parser("serve", help="run the API with an in-process worker (the default setup)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="in-process workers (each loads the model; 0: API only)")
    serve.add_argument("--max-queue", type=int, default=1000, help="queued tasks before 429")
    serve.add_argument("--subscriber-queue", type=int, default=1024, help="events a subscriber may lag behind")
    serve.add_argument("--send-timeout", type=float, default=10.0, help="seconds one send to a client may take")
    serve.add_argument("--max-pixels", type=int, default=2048 * 2048)
    serve.add_argument("--max-steps", type=int, default=100)
    serve.add_argument(
        "--log-format", choices=["text", "json"], default="text",
        help="text (with a progress bar per running task on a terminal) or one JSON object a line",
    )
    _engine_options(serve)
    _backend_options(serve)
    serve.set_defaults(run=_serve)


def _worker_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    worker = commands.add_parser("worker", help="run workers only, taking tasks from a shared --broker")
    worker.add_argument("--workers", type=int, default=1, help="workers in this process (each loads the model)")
    worker.add_argument("--name", default=None, help="worker name (default: host-pid-device)")
    worker.add_argument("--port", type=int, default=None, help=argparse.SUPPRESS)  # accepted, unused: no HTTP here
    _engine_options(worker)
    _backend_options(worker)
    worker.set_defaults(run=_worker)


def _settings(args: argparse.Namespace) -> Settings:
    from server.tasks.catalog import SD3_MEDIUM_ALIASES

    common = dict(
        data_dir=args.data_dir or default_data_dir(),
        public_url=args.public_url,
        model=args.model,
        model_aliases=tuple(args.model_alias) if args.model_alias is not None else SD3_MEDIUM_ALIASES,
        device=args.device,
        dtype=args.dtype,
        workers=args.workers,
        taesd=args.taesd,
        preview_min_interval=args.preview_min_interval,
        shutdown_grace=args.shutdown_grace,
        broker=args.broker,
        redis_prefix=args.redis_prefix,
        retention=args.retention,
        visibility_timeout=args.visibility_timeout,
        heartbeat_seconds=args.heartbeat,
        outputs_dir=args.outputs_dir,
    )
    if args.command == "worker":
        # Without --public-url a worker cannot know the API's address: output URLs stay relative.
        return Settings(worker_name=args.name, **{**common, "public_url": args.public_url or ""})
    return Settings(
        host=args.host,
        port=args.port,
        max_queue=args.max_queue,
        subscriber_queue=args.subscriber_queue,
        send_timeout=args.send_timeout,
        limits=Limits(max_pixels=args.max_pixels, max_steps=args.max_steps),
        **common,
    )


def _worker(args: argparse.Namespace) -> int:
    import asyncio

    from server.engine.fleet import run_worker_process

    if args.broker is None:
        print("latentcast worker: --broker redis://... is required (a lone worker has nobody to work for)", file=sys.stderr)
        return 2
    _quiet_libraries()
    asyncio.run(run_worker_process(_settings(args)))
    return 0


def _quiet_libraries() -> None:
    """diffusers and transformers print loading bars and advice; the service reports through events."""
    import diffusers.utils.logging
    import transformers.utils.logging

    for library in (diffusers.utils.logging, transformers.utils.logging):
        library.disable_progress_bar()
        library.set_verbosity_error()


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    _quiet_libraries()
    from server.app import create_app

    settings = dataclasses.replace(_settings(args), log_format=args.log_format)
    from server.observability import configure_logging

    # Every logger (uvicorn's too: log_config=None below) in one format; the console progress bar
    # only on a terminal, and never in JSON mode.
    configure_logging(settings.log_format, progress=settings.log_format == "text" and sys.stderr.isatty())
    logging.getLogger("latentcast").info(
        "Latentcast on %s (model %s, data in %s)", settings.base_url, settings.model, settings.data_dir
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ws="websockets-sansio",
        # Compressing every frame for every subscriber was half the event loop's time with 100
        # subscribers (previews are JPEG/WebP and do not shrink): bench/README.md, 1c.
        ws_per_message_deflate=False,
        access_log=False,  # URLs may carry task tokens; the service logs what matters itself
        timeout_graceful_shutdown=2,
        log_level="info",
        log_config=None,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="latentcast", description="Self-hosted SD3 with live previews.")
    commands = parser.add_subparsers(dest="command", required=True)
    _serve_parser(commands)
    _worker_parser(commands)
    from client.cli import add_commands

    add_commands(commands)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
