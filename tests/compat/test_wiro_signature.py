"""Wiro's x-signature, checked against `openssl dgst -sha256 -hmac` run exactly as Wiro's page does."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest

from latentcast.server.security.wiro_signature import verify_wiro_signature, wiro_signature

# the page's "Prepare Authentication Signature" block, with its placeholders filled from the environment
PAGE_SHELL = """
export YOUR_API_KEY="${KEY}";
export YOUR_API_SECRET="${SECRET}";
export NONCE="${GIVEN_NONCE}";
export SIGNATURE="$(echo -n "${YOUR_API_SECRET}${NONCE}" | openssl dgst -sha256 -hmac "${YOUR_API_KEY}")";
printf '%s' "$SIGNATURE"
"""

CASES = [
    ("eDcCm5yyUfIvMFspTwww49OUfgXkQt", "XXXXXXXXX", "1734513807"),
    ("k", "s", "0"),
    ("key-with-dashes_and.dots", "s3cr3t/+=", "987654321987654321"),
    ("ключ", "секрет", "42"),
]


def page_signature(key: str, secret: str, nonce: str) -> str:
    """What the page's shell puts in $SIGNATURE (and so in the x-signature header)."""
    env = {**os.environ, "KEY": key, "SECRET": secret, "GIVEN_NONCE": nonce, "LC_ALL": "C.UTF-8"}
    return subprocess.run(["bash", "-c", PAGE_SHELL], env=env, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize(("key", "secret", "nonce"), CASES)
def test_signature_matches_openssl(key: str, secret: str, nonce: str) -> None:
    printed = page_signature(key, secret, nonce)
    assert printed.split()[-1] == wiro_signature(key, secret, nonce)
    assert len(wiro_signature(key, secret, nonce)) == 64


@pytest.mark.parametrize(("key", "secret", "nonce"), CASES)
def test_verify_takes_the_header_as_the_page_makes_it(key: str, secret: str, nonce: str) -> None:
    printed = page_signature(key, secret, nonce)  # "SHA2-256(stdin)= <hex>" with OpenSSL 3
    bare = wiro_signature(key, secret, nonce)
    for header in (printed, bare, bare.upper(), f"(stdin)= {bare}", f" {bare}\n"):
        assert verify_wiro_signature(key, secret, nonce, header), header


def test_verify_refuses_anything_else() -> None:
    key, secret, nonce = CASES[0]
    good = wiro_signature(key, secret, nonce)
    assert not verify_wiro_signature(key, secret, str(int(nonce) + 1), good)
    assert not verify_wiro_signature(key, secret + "x", nonce, good)
    assert not verify_wiro_signature(key + "x", secret, nonce, good)
    assert not verify_wiro_signature(key, nonce, secret, good)  # nonce+secret, the wrong order
    for wrong in ("", "   ", good[:-1], good + "0", "é" * 64, "SHA2-256(stdin)="):
        assert not verify_wiro_signature(key, secret, nonce, wrong)


async def test_signed_requests_are_accepted_without_configured_keys(client: httpx.AsyncClient) -> None:
    key, secret, nonce = CASES[0]
    headers = {"x-api-key": key, "x-nonce": nonce, "x-signature": page_signature(key, secret, nonce)}
    answer = await client.post("/v1/Task/Detail", headers=headers, json={"taskid": "0000000000000000"})
    assert answer.status_code == 200
    assert answer.json() == {"result": False, "errors": [{"code": 1, "message": "There is no task yet."}]}
