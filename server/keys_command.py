"""`latentcast keys create|list|revoke|rotate-webhook-secret|server-webhook-secret`, and what
`serve` may expose without keys.

The commands work on the store the server uses (the SQLite database in --data-dir, or Redis with
--broker), so they run while the server runs: it sees a new or revoked key, or a rotated webhook
secret, within a second.

Part of the command line (server/cli.py): it loads with the standard library and orjson only, and
opens the backend when a command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import shlex
import sys
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:  # the command line loads this module without the server's dependencies
    from latentcast.server.config import Settings
    from latentcast.server.security.keys import ApiKey, KeyStore

DEFAULT_REDIS_PREFIX = "lc"


def keys_command(action: str, data_dir: Path, broker: str | None, redis_prefix: str) -> str:
    """`latentcast keys ACTION` with the options that reach the keys a server with this store
    reads: without them a key lands in the default data dir, unseen by that server."""
    from latentcast.server.config import default_data_dir

    words = ["latentcast", "keys", *action.split()]
    if broker is not None:
        words += ["--broker", _without_password(broker)]
        if redis_prefix != DEFAULT_REDIS_PREFIX:
            words += ["--redis-prefix", redis_prefix]
    elif data_dir.resolve() != default_data_dir().resolve():
        words += ["--data-dir", str(data_dir.resolve())]
    return shlex.join(words)


def _without_password(url: str) -> str:
    """A broker URL fit for a log line: its password, if any, replaced by PASSWORD."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username or ''}:PASSWORD@{host}"))


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser(
        "keys", help="API keys and webhook secrets: create, list, revoke, rotate (docs/security.md)"
    )
    actions = keys.add_subparsers(dest="action", required=True)

    create = actions.add_parser("create", help="make a key; prints it and its secret once")
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.add_argument("--admin", action="store_true", help="sees and cancels every task, not only its own")
    create.add_argument("--rate-per-minute", type=_positive, default=None, help="requests a minute this key may make")
    create.add_argument("--max-in-flight", type=_positive, default=None, help="unfinished tasks this key may have")
    create.add_argument("--json", action="store_true", help="print {id, name, key, secret, admin} as JSON")
    create.set_defaults(run=_run, action_run=_create, needs_server=True)

    listing = actions.add_parser("list", help="every key: id, name, role, limits, created, revoked")
    listing.add_argument("--json", action="store_true", help="one JSON array (no key nor secret: they are not kept)")
    listing.set_defaults(run=_run, action_run=_list, needs_server=True)

    revoke = actions.add_parser("revoke", help="stop a key at once (its open sockets are closed)")
    revoke.add_argument("key_id", help="the key's id, as `keys list` shows it (key_...)")
    revoke.set_defaults(run=_run, action_run=_revoke, needs_server=True)

    rotate = actions.add_parser(
        "rotate-webhook-secret",
        help="give a key (or, with --server, the server) a new webhook secret; prints it once",
        description="The old secret still signs every webhook beside the new one for --grace seconds, so that "
        "receivers can be told the new one meanwhile.",
    )
    owner = rotate.add_mutually_exclusive_group(required=True)
    owner.add_argument("key_id", nargs="?", help="the key's id, as `keys list` shows it (key_...)")
    owner.add_argument("--server", action="store_true", help="the server's secret (tasks made without a key)")
    rotate.add_argument(
        "--grace", type=_seconds, default=None, metavar="SECONDS",
        help="how long the old secret still signs (default: 86400)",
    )
    rotate.set_defaults(run=_run, action_run=_rotate_webhook_secret, needs_server=True)

    server = actions.add_parser(
        "server-webhook-secret",
        help="print the secret that signs the webhooks of tasks made without a key (made on first use)",
    )
    server.set_defaults(run=_run, action_run=_server_webhook_secret, needs_server=True)

    for action in (create, listing, revoke, rotate, server):
        where = action.add_argument_group("where the server keeps its keys")
        where.add_argument(
            "--data-dir", type=Path, default=None, help="the server's --data-dir (default: ~/.latentcast)"
        )
        where.add_argument("--broker", default=None, metavar="redis://HOST:6379/0", help="the server's --broker")
        where.add_argument("--redis-prefix", default=DEFAULT_REDIS_PREFIX, help="the server's --redis-prefix")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text}")
    return value


def _run(args: argparse.Namespace) -> int:
    from latentcast.server.backends.factory import open_key_store
    from latentcast.server.config import Settings, default_data_dir

    data_dir = args.data_dir or default_data_dir()
    settings = Settings(data_dir=data_dir, broker=args.broker, redis_prefix=args.redis_prefix)

    async def run() -> int:
        store = open_key_store(settings)
        try:
            return await args.action_run(store, args)
        finally:
            await store.close()

    return asyncio.run(run())


async def _create(store: KeyStore, args: argparse.Namespace) -> int:
    from latentcast.server.security.keys import new_key
    from latentcast.server.security.webhook_secrets import WebhookSecrets, new_secret

    made = new_key(args.name, admin=args.admin, rate_per_minute=args.rate_per_minute, max_in_flight=args.max_in_flight)
    await store.add(made.record)
    key = made.record
    signing = await store.put_webhook_secrets(key.id, WebhookSecrets(new_secret()), replace=True)
    if args.json:
        shown = {
            "id": key.id, "name": key.name, "key": made.key, "secret": made.secret,
            "webhook_secret": signing.current, "admin": key.admin,
        }
        print(orjson.dumps(shown).decode())
        return 0
    print(f"Created {key.id} ({_describe(key)})")
    print(f"  API key:        {made.key}")
    print(f"  Secret:         {made.secret}   (only for Wiro's x-signature)")
    print(f"  Webhook secret: {signing.current}   (verifies the webhooks of this key's tasks)")
    print("Shown once: the server keeps a hash of the key, the secret sealed with the key, and the webhook secret")
    print("as it is, to sign with (docs/security.md).")
    return 0


async def _rotate_webhook_secret(store: KeyStore, args: argparse.Namespace) -> int:
    from latentcast.server.security.webhook_secrets import (
        DEFAULT_GRACE_SECONDS,
        SERVER,
        WebhookSecrets,
        new_secret,
        server_secrets,
    )

    grace = DEFAULT_GRACE_SECONDS if args.grace is None else args.grace
    old: WebhookSecrets | None
    if args.server:
        owner, old = SERVER, await server_secrets(store)
    else:
        if not any(key.id == args.key_id for key in await store.all()):
            print(f"latentcast keys rotate-webhook-secret: no key {args.key_id!r} (see `latentcast keys list`)",
                  file=sys.stderr)
            return 1
        owner, old = args.key_id, await store.webhook_secrets(args.key_id)
    rotated = old.rotated(grace, time.time()) if old is not None else WebhookSecrets(new_secret())
    await store.put_webhook_secrets(owner, rotated, replace=True)
    print(f"New webhook secret of {'the server' if args.server else args.key_id}: {rotated.current}")
    if rotated.previous is not None:
        print(f"The old one signs every webhook beside it for {grace:g} more seconds; tell your receivers the new one.")
    return 0


async def _server_webhook_secret(store: KeyStore, args: argparse.Namespace) -> int:
    from latentcast.server.security.webhook_secrets import server_secrets

    print((await server_secrets(store)).current)
    return 0


async def _list(store: KeyStore, args: argparse.Namespace) -> int:
    keys = await store.all()
    if args.json:
        hidden = ("digest", "sealed_secret")
        listed = [{k: v for k, v in dataclasses.asdict(key).items() if k not in hidden} for key in keys]
        print(orjson.dumps(listed).decode())
        return 0
    if not keys:
        from latentcast.server.config import default_data_dir

        hint = keys_command("create --name NAME", args.data_dir or default_data_dir(), args.broker, args.redis_prefix)
        print(f"No keys: the server is open to anyone who can reach it. `{hint}` makes one.")
    for key in keys:
        state = f"revoked {_when(key.revoked_at)}" if key.revoked_at is not None else "active"
        print(f"{key.id}  {_describe(key)}  created {_when(key.created_at)}  {state}")
    return 0


async def _revoke(store: KeyStore, args: argparse.Namespace) -> int:
    key = await store.revoke(args.key_id, time.time())
    if key is None:
        print(f"latentcast keys revoke: no key {args.key_id!r} (see `latentcast keys list`)", file=sys.stderr)
        return 1
    print(f"Revoked {key.id} ({key.name}): refused within a second; its open sockets are closed.")
    return 0


def _describe(key: ApiKey) -> str:
    parts = [repr(key.name), "admin" if key.admin else "own tasks only"]
    if key.rate_per_minute is not None:
        parts.append(f"{key.rate_per_minute} requests/min")
    if key.max_in_flight is not None:
        parts.append(f"{key.max_in_flight} in flight")
    return ", ".join(parts)


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at is not None else "-"


# -- serve without keys ---------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


async def _configured(settings: Settings) -> bool:
    from latentcast.server.backends.factory import open_key_store

    store = open_key_store(settings)
    try:
        return await store.configured()
    finally:
        await store.close()


@dataclasses.dataclass(frozen=True, slots=True)
class Exposure:
    allowed: bool  # whether `serve` may start as asked
    open: bool  # whoever reaches the server may use it: no keys
    message: str


def exposure(settings: Settings, *, insecure: bool) -> Exposure:
    """Who could use the server `serve` is asked to start, and whether it may start."""
    store = (settings.data_dir, settings.broker, settings.redis_prefix)
    if asyncio.run(_configured(settings)):
        return Exposure(True, False, f"API keys required (`{keys_command('list', *store)}` shows them)")
    where = f"{settings.host}:{settings.port}"
    hint = keys_command("create --name NAME", *store)
    if is_loopback(settings.host):
        message = f"No API keys: open to anyone on this machine (listening on {where} only). `{hint}` makes one."
        return Exposure(True, True, message)
    if insecure:
        message = f"No API keys and --insecure: anyone who can reach {where} may run and read every task."
        return Exposure(True, True, message)
    return Exposure(False, True, (
        f"refusing to listen on {settings.host} without API keys: anyone who can reach it could run and read "
        f"every task. Create one (`{hint}`), listen on 127.0.0.1, or pass --insecure."
    ))
