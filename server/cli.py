"""`latentcast`: the command line. `serve` runs the service; each command says what it needs.

This module imports nothing beyond the standard library at load time: `pip install latentcast`
(the client alone) runs `generate` and `watch` through it, and the server's commands say which
extra to install instead of failing on an import.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

# A module of plain constants: the client-only install (no pydantic, no torch) reads it too.
from latentcast.server.tasks.catalog import BUILTIN_MODELS, DEFAULT_MODEL

if TYPE_CHECKING:
    from latentcast.server.config import Settings

T = TypeVar("T")

# What `pip install "latentcast[server]"` adds; a server command checks for them before it starts.
SERVER_MODULES = ("torch", "diffusers", "transformers", "starlette", "uvicorn", "pydantic")
# The default of --compat-wait, when set (it was the only way to change the wait before the flag).
COMPAT_WAIT_ENV = "LATENTCAST_COMPAT_WAIT_SECONDS"


def _engine_options(parser: argparse.ArgumentParser) -> None:
    engine = parser.add_argument_group("engine")
    engine.add_argument("--data-dir", type=Path, default=None, help="tasks, outputs and models (default: ~/.latentcast)")
    engine.add_argument("--public-url", default=None, help="the URL clients reach the API at, for output links")
    engine.add_argument(
        "--model", default=DEFAULT_MODEL,
        help=f"{', '.join(BUILTIN_MODELS)} (builtin, no download), a diffusers SD3 folder, or a hub id",
    )
    engine.add_argument(
        "--model-alias", action="append", default=None, metavar="NAME",
        help="another name requests may use for the model, besides the providers' SD3 names (repeatable)",
    )
    engine.add_argument(
        "--replace-model-aliases", action="store_true",
        help="the model answers only to its own name and the --model-alias names, not the providers' defaults",
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
    backend.add_argument(
        "--redis-pool-size", type=int, default=50, metavar="N",
        help="Redis connections this process opens at most (at least --workers + 4); a command waits for one",
    )
    backend.add_argument(
        "--redis-pool-timeout", type=_seconds, default=10.0, metavar="SECONDS",
        help="seconds a command waits for a Redis connection before it is refused as busy (503)",
    )


def _positive(convert: Callable[[str], T], unit: str = "") -> Callable[[str], T]:
    """An argument type: `convert`ed, and more than 0."""

    def parse(text: str) -> T:
        value = convert(text)
        if not value > 0:  # type: ignore[operator]
            raise argparse.ArgumentTypeError(f"must be more than 0{unit}, got {text}")
        return value

    return parse


_seconds = _positive(float, " seconds")


def _pool_problem(args: argparse.Namespace) -> str | None:
    """Why --redis-pool-size is too small for this process, if it is. Each worker's wait for a job,
    the live feed's reader and the cancel listener hold a connection while they wait (XREADGROUP
    and XREAD BLOCK, SUBSCRIBE); what they leave must carry every other command."""
    least = args.workers + 4
    if args.broker is not None and args.redis_pool_size < least:
        return (
            f"--redis-pool-size must be at least --workers + 4 = {least} (each worker's job read, the feed reader "
            f"and the cancel listener hold a connection while they wait), got {args.redis_pool_size}"
        )
    return None


def _limit_options(parser: argparse.ArgumentParser) -> None:
    limits = parser.add_argument_group("limits on clients (docs/security.md; a rate or timeout of 0 is off)")
    limits.add_argument("--max-prompt-chars", type=int, default=4000, help="characters of a prompt (at most 4000)")
    limits.add_argument("--max-images", type=int, default=4, help="images one task may ask for (at most 4)")
    limits.add_argument("--max-body-bytes", type=int, default=1024 * 1024, help="size of a request body (413)")
    limits.add_argument(
        "--min-body-rate", type=float, default=1024.0,
        help="bytes/s a request body must average after --header-timeout (408)",
    )
    limits.add_argument(
        "--header-timeout", type=float, default=10.0, help="seconds a request's line and headers may take (closed)"
    )
    limits.add_argument("--rate-per-minute", type=int, default=0, help="API requests per key, or per address (429)")
    limits.add_argument(
        "--max-in-flight", type=int, default=0, help="queued or running tasks per key, or per address (429)"
    )
    limits.add_argument("--max-subscriptions", type=int, default=100, help="tasks one socket may follow at once")
    limits.add_argument(
        "--ws-idle-timeout", type=float, default=300.0, help="seconds a socket may follow nothing before it is closed"
    )
    limits.add_argument(
        "--ws-max-message-bytes", type=int, default=1024 * 1024, help="size of a socket message (closed with 1009)"
    )
    limits.add_argument("--ws-ping-interval", type=float, default=20.0, help="seconds between pings to each socket")
    limits.add_argument("--ws-ping-timeout", type=float, default=20.0, help="seconds a socket has to answer a ping")


def _webhook_options(parser: argparse.ArgumentParser) -> None:
    hooks = parser.add_argument_group("webhooks (docs/webhooks.md)")
    hooks.add_argument(
        "--webhook-allow-private", action="store_true",
        help="let webhooks (and Wiro's callbackUrl) reach loopback, private, link-local and metadata addresses "
        "(for tests and internal networks; default: public addresses only)",
    )
    hooks.add_argument(
        "--webhook-timeout", type=_seconds, default=10.0, metavar="SECONDS",
        help="seconds one delivery attempt may take until the receiver's status arrives (default: 10)",
    )
    hooks.add_argument(
        "--webhook-first-retry", type=_seconds, default=5.0, metavar="SECONDS",
        help="seconds before the first retry of a failed delivery; each next waits about twice as long (default: 5)",
    )
    hooks.add_argument(
        "--webhook-max-retry-delay", type=_seconds, default=3600.0, metavar="SECONDS",
        help="the longest wait between two attempts of a delivery (default: 3600)",
    )
    hooks.add_argument(
        "--webhook-retry-for", type=_seconds, default=24 * 3600.0, metavar="SECONDS",
        help="how long after its event a delivery is still retried before it is given up (default: 86400)",
    )
    hooks.add_argument(
        "--webhook-per-host", type=_positive(int), default=4, metavar="N",
        help="deliveries in flight at once to one receiver (host:port), per front-end (default: 4)",
    )


def _serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the API with an in-process worker (the default setup)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback --host without API keys (anyone may use it)"
    )
    serve.add_argument(
        "--cors-origin", action="append", default=[], metavar="ORIGIN",
        help="a site (https://app.example) whose pages may call the API, open sockets and frame embeds "
        "(repeatable; \"*\": any; default: this server's own pages only)",
    )
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="workers, each in its own process with its model (0: API only)")
    serve.add_argument(
        "--worker-threads", action="store_true",
        help="run the workers as threads of the API process instead (one interpreter lock for both)",
    )
    serve.add_argument("--max-queue", type=int, default=1000, help="queued tasks before 429")
    serve.add_argument("--subscriber-queue", type=int, default=1024, help="events a subscriber may lag behind")
    serve.add_argument("--send-timeout", type=float, default=10.0, help="seconds one send to a client may take")
    serve.add_argument(
        "--compat-wait", type=float, default=os.environ.get(COMPAT_WAIT_ENV, "900"), metavar="SECONDS",
        help="seconds a provider's synchronous endpoint waits for its task before cancelling it "
        f"(default: ${COMPAT_WAIT_ENV}, else 900)",
    )
    _webhook_options(serve)
    serve.add_argument("--max-pixels", type=int, default=2048 * 2048)
    serve.add_argument("--max-steps", type=int, default=100)
    serve.add_argument(
        "--log-format", choices=["text", "json"], default="text",
        help="text (with a progress bar per running task on a terminal) or one JSON object a line",
    )
    _engine_options(serve)
    _backend_options(serve)
    _limit_options(serve)
    serve.set_defaults(run=_serve, needs_server=True)


def _worker_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = commands.add_parser("worker", help="run workers only, taking tasks from a shared --broker")
    worker.add_argument("--workers", type=int, default=1, help="workers in this process (each loads the model)")
    worker.add_argument("--name", default=None, help="worker name (default: host-pid-device)")
    worker.add_argument("--port", type=int, default=None, help=argparse.SUPPRESS)  # accepted, unused: no HTTP here
    _engine_options(worker)
    _backend_options(worker)
    worker.set_defaults(run=_worker, needs_server=True)


def _model_aliases(args: argparse.Namespace) -> tuple[str, ...]:
    """--model-alias adds names to the defaults; with --replace-model-aliases they are the only ones."""
    from latentcast.server.tasks.catalog import DEFAULT_ALIASES

    given = tuple(args.model_alias or ())
    return given if args.replace_model_aliases else tuple(dict.fromkeys((*DEFAULT_ALIASES, *given)))


def _settings(args: argparse.Namespace) -> Settings:
    from latentcast.server.config import Settings, default_data_dir
    from latentcast.server.tasks.params import Limits

    common = dict(
        data_dir=args.data_dir or default_data_dir(),
        public_url=args.public_url,
        model=args.model,
        model_aliases=_model_aliases(args),
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
        redis_pool_size=args.redis_pool_size,
        redis_pool_timeout=args.redis_pool_timeout,
    )
    if args.command == "worker":
        # Without --public-url a worker cannot know the API's address: output URLs stay relative.
        return Settings(worker_name=args.name, **{**common, "public_url": args.public_url or ""})
    return Settings(
        worker_threads=args.worker_threads,
        host=args.host,
        port=args.port,
        max_queue=args.max_queue,
        subscriber_queue=args.subscriber_queue,
        send_timeout=args.send_timeout,
        compat_wait=args.compat_wait,
        webhook_allow_private=args.webhook_allow_private,
        webhook_timeout=args.webhook_timeout,
        webhook_first_retry=args.webhook_first_retry,
        webhook_max_retry_delay=args.webhook_max_retry_delay,
        webhook_retry_for=args.webhook_retry_for,
        webhook_per_host=args.webhook_per_host,
        cors_origins=tuple(origin.rstrip("/") for origin in args.cors_origin),
        limits=Limits(
            max_pixels=args.max_pixels, max_steps=args.max_steps,
            max_prompt_chars=args.max_prompt_chars, max_images=args.max_images,
        ),
        max_body_bytes=args.max_body_bytes,
        min_body_rate=args.min_body_rate,
        header_timeout=args.header_timeout,
        rate_per_minute=args.rate_per_minute,
        max_in_flight=args.max_in_flight,
        max_subscriptions=args.max_subscriptions,
        ws_idle_timeout=args.ws_idle_timeout,
        ws_max_message_bytes=args.ws_max_message_bytes,
        ws_ping_interval=args.ws_ping_interval,
        ws_ping_timeout=args.ws_ping_timeout,
        **common,
    )


def _worker(args: argparse.Namespace) -> int:
    import asyncio

    from latentcast.server.engine.loader import quiet_libraries
    from latentcast.server.worker_command import run_workers

    if args.broker is None:
        print("latentcast worker: --broker redis://... is required (a lone worker has nobody to work for)", file=sys.stderr)
        return 2
    quiet_libraries()
    asyncio.run(run_workers(_settings(args)))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from latentcast.server.keys_command import exposure

    exposed = exposure(_settings(args), insecure=args.insecure)  # before the slow imports: refuse at once
    if not exposed.allowed:
        print(f"latentcast serve: {exposed.message}", file=sys.stderr)
        return 2
    import uvicorn

    settings = dataclasses.replace(_settings(args), log_format=args.log_format)
    if settings.worker_threads:  # else the models load in worker processes, which quiet them there
        from latentcast.server.engine.loader import quiet_libraries

        quiet_libraries()
    from latentcast.server.app import create_app
    from latentcast.server.observability import configure_logging

    # Every logger (uvicorn's too: log_config=None below) in one format; the console progress bar
    # only on a terminal, and never in JSON mode.
    configure_logging(settings.log_format, progress=settings.log_format == "text" and sys.stderr.isatty())
    logging.getLogger("latentcast").info(
        "Latentcast on %s (model %s, data in %s)", settings.base_url, settings.model, settings.data_dir
    )
    if settings.model in BUILTIN_MODELS:
        logging.getLogger("latentcast").info(
            "%s %s; `--model PATH` serves real SD3 weights (a diffusers folder)",
            settings.model, BUILTIN_MODELS[settings.model],
        )
    logging.getLogger("latentcast").log(logging.WARNING if exposed.open else logging.INFO, exposed.message)
    from latentcast.server.api.frame_writer import serving_protocol
    from latentcast.server.security.slowloris import head_deadline

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        http=head_deadline(settings.header_timeout) if settings.header_timeout else "auto",
        ws=serving_protocol(),  # uvicorn's websockets-sansio, plus frames written past ASGI where it allows
        ws_max_size=settings.ws_max_message_bytes,
        ws_ping_interval=settings.ws_ping_interval or None,
        ws_ping_timeout=settings.ws_ping_timeout or None,
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
    from latentcast.client.version import __version__

    parser.add_argument("--version", action="version", version=f"latentcast {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _serve_parser(commands)
    _worker_parser(commands)
    from latentcast.server.keys_command import add_commands as add_key_commands

    add_key_commands(commands)
    from latentcast.client.cli import add_commands

    add_commands(commands)
    args = parser.parse_args(argv)
    if getattr(args, "needs_server", False) and (missing := _missing_server_modules()):
        print(
            f"latentcast {args.command}: the server is not installed here (no {', '.join(missing)}); "
            "pip install \"latentcast[server]\"",
            file=sys.stderr,
        )
        return 2
    if hasattr(args, "redis_pool_size") and (problem := _pool_problem(args)):
        print(f"latentcast {args.command}: {problem}", file=sys.stderr)
        return 2
    return args.run(args)


def _missing_server_modules() -> list[str]:
    return [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]


if __name__ == "__main__":
    sys.exit(main())
