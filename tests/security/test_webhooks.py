"""Where a webhook may go (server.security.webhooks): the URL's form, the address classes refused,
and the client that checks each connection, against a real receiver on loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Iterator

import pytest

from latentcast.server.security import webhooks
from tests.receiver import Receiver


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiver = Receiver([])
    yield receiver
    receiver.close()


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.0.0.8", "a private address"),
        ("172.16.0.1", "a private address"),
        ("172.31.255.254", "a private address"),
        ("192.168.1.20", "a private address"),
        ("169.254.10.10", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("192.0.0.192", "a cloud metadata address"),
        ("168.63.129.16", "a cloud metadata address"),
        ("fc00::5", "a unique-local address"),
        ("fdab:cdef::1", "a unique-local address"),
        ("0.0.0.0", "the unspecified address"),
        ("::", "the unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("100.64.0.1", "not a public address"),  # carrier-grade NAT
        ("240.0.0.1", "a reserved address"),
        ("::7f00:1", "a reserved address"),  # IPv4-compatible, deprecated
        ("::ffff:127.0.0.1", "a loopback address"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "a cloud metadata address"),
        ("2002:a00:1::1", "a private address"),  # 6to4 of 10.0.0.1
        ("64:ff9b::7f00:1", "a loopback address"),  # NAT64 of 127.0.0.1
        ("8.8.8.8", None),
        ("172.32.0.1", None),
        ("2001:4860:4860::8888", None),
    ],
)
def test_each_inward_address_class_is_named(address: str, kind: str | None) -> None:
    assert webhooks.address_class(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://[::1", "not a valid URL (Invalid port: ':1')"),
        ("http://x\r\nHost: y", "must not contain spaces or control characters"),
        ("http://x/\x00", "must not contain spaces or control characters"),
        ("http://exa mple.com/", "must not contain spaces or control characters"),
        ("ftp://x", "must be an http or https URL"),
        ("file:///etc/passwd", "must be an http or https URL"),
        ("example.com/hook", "must be an http or https URL"),
        ("http://", "must name a host"),
        ("http:///hook", "must name a host"),
    ],
)
async def test_a_malformed_url_is_refused_whatever_the_addresses_allowed(url: str, message: str) -> None:
    for allow_private in (False, True):
        with pytest.raises(webhooks.RefusedURL) as refused:
            await webhooks.check(url, allow_private=allow_private)
        assert (refused.value.rule, str(refused.value)) == ("url", message)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:9/hook", r"127\.0\.0\.1 is a loopback address"),
        ("http://[::1]:9/hook", r"::1 is a loopback address"),
        ("http://localhost:9/hook", r"localhost resolves to (127\.0\.0\.1|::1), which is a loopback address"),
        ("http://2130706433/", r"2130706433 resolves to 127\.0\.0\.1, which is a loopback address"),
        ("https://169.254.169.254/latest/meta-data/", r"169\.254\.169\.254 is a cloud metadata address"),
    ],
)
async def test_an_inward_host_is_refused_unless_allowed(url: str, message: str) -> None:
    with pytest.raises(webhooks.RefusedURL) as refused:
        await webhooks.check(url, allow_private=False)
    assert refused.value.rule == "public_address"
    assert re.fullmatch(message + "; only public addresses are allowed", str(refused.value))
    assert str(await webhooks.check(url, allow_private=True)) == url


async def test_a_host_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(webhooks.RefusedURL) as refused:
        await webhooks.check("http://no-such-host.invalid/hook", allow_private=False)
    assert (refused.value.rule, str(refused.value)) == ("resolvable_host", "the host no-such-host.invalid does not resolve")


async def test_the_client_checks_the_address_it_connects_to(hook: Receiver) -> None:
    """What `check` let through is checked again at each connection: a name that resolves inward
    by then (here `localhost`, which a submit-time check would have refused too) is not sent to."""
    by_name = hook.url.replace("127.0.0.1", "localhost")
    async with webhooks.client(allow_private=False, timeout=10) as client:
        for url in (hook.url, by_name):
            with pytest.raises(webhooks.RefusedURL, match="is a loopback address"):
                await client.post(url, json={"n": 1})
    async with webhooks.client(allow_private=True, timeout=10) as client:
        answer = await client.post(by_name, json={"n": 2})
    assert answer.status_code == 200
    assert [request["body"] for request in await asyncio.to_thread(hook.wait_for, 1)] == [{"n": 2}]
