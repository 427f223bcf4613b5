"""The secrets webhooks are signed with (client/webhooks.py signs and verifies).

Each API key has one, shown once by `latentcast keys create`; tasks made without a key (a server
without keys) are signed with the server's own, which `latentcast keys server-webhook-secret`
shows. Unlike an API key, a webhook secret cannot be stored hashed: the server must sign with it
long after the request that made the task, with no key at hand. So the `KeyStore` keeps it as it
is (its `SecretStore` part); whoever reads the database can forge this server's webhooks, never use its API.

Rotating keeps the old secret signing beside the new one for a grace period: each delivery then
carries two signatures, and a receiver that still checks the old secret keeps accepting them
until it is told the new one.
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
import time
from typing import Protocol

from latentcast.client.webhooks import SECRET_PREFIX

# The owner of the server's own secret (key ids are `key_...`, so none is this).
SERVER = "server"
# How long a rotated secret still signs, unless told otherwise.
DEFAULT_GRACE_SECONDS = 24 * 3600.0


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookSecrets:
    """An owner's signing secret, and the one it replaced while that still signs (`previous_until`)."""

    current: str
    previous: str | None = None
    previous_until: float | None = None

    def signing(self, now: float) -> list[str]:
        """The secrets a delivery is signed with at `now`: the current one, and the previous one
        during its grace period."""
        if self.previous is not None and self.previous_until is not None and now < self.previous_until:
            return [self.current, self.previous]
        return [self.current]

    def rotated(self, grace: float, now: float) -> WebhookSecrets:
        """A new current secret; this one still signs for `grace` seconds."""
        return WebhookSecrets(new_secret(), self.current, now + grace)


class SecretStore(Protocol):
    """Where each owner's webhook secrets are kept: the part of the `KeyStore` (server/security/keys.py)
    that signing needs."""

    async def webhook_secrets(self, owner: str) -> WebhookSecrets | None:
        """The secrets that sign the webhooks of `owner`'s tasks (a key id, or `SERVER`)."""
        ...

    async def put_webhook_secrets(self, owner: str, secrets: WebhookSecrets, *, replace: bool) -> WebhookSecrets:
        """Keep `secrets` for `owner` (unless it has some already and not `replace`); what is kept now."""
        ...


async def server_secrets(store: SecretStore) -> WebhookSecrets:
    """The server's secrets, made the first time anyone asks (every front-end gets the same)."""
    found = await store.webhook_secrets(SERVER)
    if found is not None:
        return found
    return await store.put_webhook_secrets(SERVER, WebhookSecrets(new_secret()), replace=False)


async def signing_secrets(store: SecretStore, owner: str | None) -> list[str]:
    """The secrets that sign a delivery of `owner`'s task now: its key's, or the server's for a task
    made without a key (or by a key older than webhook secrets, which has none until it is given
    one). Read at each delivery, so a rotation counts from the next one on, on every front-end."""
    found = await store.webhook_secrets(owner) if owner else None
    return (found or await server_secrets(store)).signing(time.time())
