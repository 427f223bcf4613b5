"""Where the server may send a webhook (Wiro's `callbackUrl`): an http(s) URL of a public host.

A URL a client gives makes the server send requests on the client's behalf, from inside the
operator's network. So unless the operator allows it (`serve --webhook-allow-private`), a URL
whose host is, or resolves to, a loopback, private, link-local, unique-local, unspecified,
multicast, reserved or cloud-metadata address is refused: when it is given (`check`), and again
at each connection (`client`). The second check is the one that holds: it resolves the name
itself and connects to the very address it checked, so a name that resolves elsewhere later (or
between a check and a connection, as DNS rebinding does) reaches nothing inside.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterable, AsyncIterator, Iterable

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Seconds a name may take to resolve when a URL is given (the request waits for it).
RESOLVE_TIMEOUT_SECONDS = 5.0
# Cloud instance-metadata services, named as such in refusals. Most lie in ranges refused anyway
# (169.254.169.254: AWS, GCP, Azure and others; AWS's fd00:ec2::254, ECS's 169.254.170.2, Alibaba's
# 100.100.100.200), but Oracle's 192.0.0.192 and Azure's wire server 168.63.129.16 look public.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "192.0.0.192", "168.63.129.16", "100.100.100.200")
)
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class RefusedURL(ValueError):
    """A webhook URL the server will not send to; `rule` names why (`url`, `resolvable_host`,
    `public_address`), the message says it in words, without the field's name."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def parse(url: str) -> httpx.URL:
    """`url` as an http(s) URL with a host, or `RefusedURL` (rule `url`)."""
    if any(ord(c) <= 0x20 or 0x7F <= ord(c) <= 0x9F for c in url):
        raise RefusedURL("url", "must not contain spaces or control characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise RefusedURL("url", f"not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise RefusedURL("url", "must be an http or https URL")
    if not parsed.host:
        raise RefusedURL("url", "must name a host")
    return parsed


def address_class(address: IPAddress) -> str | None:
    """What kind of inward address `address` is ("a loopback address", ...), or None for a public one.
    An IPv4 address carried inside an IPv6 one (mapped, 6to4, NAT64) is judged as itself."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return address_class(embedded)
    if address in METADATA:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in _UNIQUE_LOCAL:
        return "a unique-local address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:  # e.g. carrier-grade NAT's shared space
        return "not a public address"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.ipv4_mapped or address.sixtofour


async def public_addresses(host: str) -> list[IPAddress]:
    """Every address `host` resolves to, or `RefusedURL` if it resolves to none or to any inward one
    (a name with one public and one private address is refused: either may be the one used)."""
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise RefusedURL("resolvable_host", f"the host {host} does not resolve") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in found))
    for address in addresses:
        inward = address_class(address)
        if inward is not None:
            raise RefusedURL("public_address", f"{_which(host, address)} is {inward}; only public addresses are allowed")
    return addresses


def _which(host: str, address: IPAddress) -> str:
    """The host as a refusal names it: itself when it is the address, else what it resolved to."""
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host) == address:
            return host
    return f"{host} resolves to {address}, which"


async def check(url: str, *, allow_private: bool) -> httpx.URL:
    """`url` parsed, or `RefusedURL`: not an http(s) URL with a host, or (unless `allow_private`)
    its host resolves to no address or to an inward one."""
    parsed = parse(url)
    if not allow_private:
        try:
            await asyncio.wait_for(public_addresses(parsed.host), RESOLVE_TIMEOUT_SECONDS)
        except TimeoutError:
            raise RefusedURL("resolvable_host", f"the host {parsed.host} did not resolve in time") from None
    return parsed


class _PublicOnly(httpcore.AnyIOBackend):
    """Connections to public addresses only: the host is resolved and checked here, and the
    connection made to an address that passed, never to the name (which could resolve again)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await asyncio.wait_for(public_addresses(host), timeout)
        for address in addresses[:-1]:
            with contextlib.suppress(httpcore.ConnectError):  # e.g. no IPv6 route: the next one may answer
                return await super().connect_tcp(str(address), port, timeout, local_address, socket_options)
        return await super().connect_tcp(str(addresses[-1]), port, timeout, local_address, socket_options)


class _Body(httpx.AsyncByteStream):
    """An answer's body as it arrives, so that a caller may read as little of it as it wants."""

    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)  # httpcore's: hands the connection back, or closes it
        if close is not None:
            await close()


class _Transport(httpx.AsyncBaseTransport):
    """httpx over an httpcore pool with its own network backend (httpx's transport takes none)."""

    def __init__(self, network: httpcore.AsyncNetworkBackend | None) -> None:
        self._pool = httpcore.AsyncConnectionPool(network_backend=network)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = httpcore.URL(
            scheme=request.url.raw_scheme, host=request.url.raw_host, port=request.url.port, target=request.url.raw_path
        )
        answer = await self._pool.handle_async_request(
            httpcore.Request(
                request.method, url, headers=request.headers.raw, content=await request.aread(),
                extensions=request.extensions,
            )
        )
        assert isinstance(answer.stream, AsyncIterable)
        return httpx.Response(answer.status, headers=answer.headers, stream=_Body(answer.stream))

    async def aclose(self) -> None:
        await self._pool.aclose()


def client(*, allow_private: bool, timeout: float) -> httpx.AsyncClient:
    """An HTTP client for webhooks: no redirects, no proxy from the environment, and (unless
    `allow_private`) a `RefusedURL` instead of any connection to an inward address. A failed
    request raises httpcore's errors (or `httpx.InvalidURL`), not httpx's `HTTPError`s. With
    `stream`, an answer's body is read only as far as the caller reads it: a receiver that sends
    its status and then a body that never ends holds nobody up."""
    network = None if allow_private else _PublicOnly()
    return httpx.AsyncClient(transport=_Transport(network), timeout=timeout, follow_redirects=False)
