"""Wiro's request signature: `x-signature` = HMAC-SHA256 of `secret + nonce`, keyed by the API key.

Wiro's page computes it in the shell:

    echo -n "${YOUR_API_SECRET}${NONCE}" | openssl dgst -sha256 -hmac "${YOUR_API_KEY}"

and sends that output as the header. OpenSSL prints the digest after a label (`SHA2-256(stdin)= `
in OpenSSL 3, `(stdin)= ` in 1.1), so a header exactly as the page makes it carries the label;
`verify_wiro_signature` takes the bare hex digest or the labelled form. Checking it against a
project's stored key and secret (and refusing a replayed nonce) is `server.security.keyring`'s part.
"""

from __future__ import annotations

import hashlib
import hmac


def wiro_signature(api_key: str, secret: str, nonce: str) -> str:
    """The lowercase hex HMAC-SHA256 of `secret + nonce` with `api_key` as the key."""
    return hmac.new(api_key.encode(), (secret + nonce).encode(), hashlib.sha256).hexdigest()


def verify_wiro_signature(api_key: str, secret: str, nonce: str, signature: str) -> bool:
    """True when `signature` (bare, or as `openssl dgst` prints it) signs `nonce`; constant-time."""
    words = signature.split()
    given = words[-1].lower() if words else ""
    return hmac.compare_digest(given.encode(), wiro_signature(api_key, secret, nonce).encode())
