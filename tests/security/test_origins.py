"""Browser origins: CORS, the socket handshake's Origin check, cross-site simple requests, framing."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.security.helpers import TINY
from tests.support import ServerProcess

ALLOWED = "https://studio.example"
HOSTILE = "https://evil.example"


@pytest.fixture(scope="module")
def allowing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server without keys (so only origins decide) that trusts ALLOWED's pages."""
    server = ServerProcess(tmp_path_factory.mktemp("origins"), "--workers", "0", "--cors-origin", ALLOWED).start()
    yield server
    server.stop()


def _preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_cors_follows_cors_origin(allowing: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=allowing.base_url) as http:
        allowed = await http.options("/v1/tasks", headers=_preflight(ALLOWED))
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ALLOWED
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        refused = await http.options("/v1/tasks", headers=_preflight(HOSTILE))
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers

        read = await http.get("/v1/models", headers={"Origin": ALLOWED})
        assert read.headers["access-control-allow-origin"] == ALLOWED
        assert "access-control-allow-origin" not in (await http.get("/v1/models", headers={"Origin": HOSTILE})).headers
        # embed.js and its modules load on any site
        for origin in (ALLOWED, HOSTILE):
            script = await http.get("/static/embed.js", headers={"Origin": origin})
            assert script.status_code == 200 and script.headers["access-control-allow-origin"] in ("*", origin)


async def test_by_default_only_the_servers_own_pages_are_trusted(tmp_path) -> None:
    server = ServerProcess(tmp_path, "--workers", "0").start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            assert (await http.options("/v1/tasks", headers=_preflight(ALLOWED))).status_code == 400
            # this server's own page may post (browsers send Origin on same-origin POSTs too)
            own = await http.post("/v1/tasks", json=TINY, headers={"Origin": server.base_url})
            assert own.status_code == 201
            embed = await http.get("/embed/0123456789abcdef")
            assert "frame-ancestors 'self';" in embed.headers["content-security-policy"] + ";"
        async with websockets.connect(server.ws_url, origin=server.base_url):
            pass
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(server.ws_url, origin=ALLOWED)
        assert refused.value.response.status_code == 403
    finally:
        server.stop()


async def test_the_socket_handshake_checks_origin(allowing: ServerProcess) -> None:
    for origin in (None, allowing.base_url, ALLOWED):  # a non-browser client; this server's pages; listed
        async with websockets.connect(allowing.ws_url, origin=origin) as ws:
            await ws.send('{"type": "subscribe_all"}')
            assert '"subscribed"' in await ws.recv()
    for origin in (HOSTILE, "null", "http://127.0.0.1:1"):
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(allowing.ws_url, origin=origin)
        assert refused.value.response.status_code == 403
        assert b"origin_not_allowed" in refused.value.response.body


async def test_other_sites_cannot_post_without_a_preflight(allowing: ServerProcess) -> None:
    """A form or text/plain POST needs no preflight: without this check any page a visitor opens
    could queue work on a keyless server on their machine."""
    async with httpx.AsyncClient(base_url=allowing.base_url) as http:
        before = len((await http.get("/v1/tasks", params={"limit": 200})).json()["data"])
        wiro = "/v1/Run/stabilityai/stable-diffusion-3-medium"
        for path, content in (("/v1/tasks", b'{"prompt": "csrf"}'), (wiro, b"prompt=csrf")):
            hostile = await http.post(path, content=content, headers={"Origin": HOSTILE, "Content-Type": "text/plain"})
            assert hostile.status_code == 403 and hostile.json()["error"]["type"] == "origin_not_allowed"
        assert len((await http.get("/v1/tasks", params={"limit": 200})).json()["data"]) == before
        listed = await http.post("/v1/tasks", json=TINY, headers={"Origin": ALLOWED})
        assert listed.status_code == 201 and listed.headers["access-control-allow-origin"] == ALLOWED
        assert "location" in listed.headers["access-control-expose-headers"].lower()


async def test_allowed_origins_may_frame_the_embed_page_only(allowing: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=allowing.base_url) as http:
        embed = await http.get("/embed/0123456789abcdef?token=x")
        page = await http.get("/")
    assert f"frame-ancestors 'self' {ALLOWED}" in embed.headers["content-security-policy"]
    assert "x-frame-options" not in embed.headers
    assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
    assert ALLOWED not in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "SAMEORIGIN"
