"""Security headers: every page's CSP, Referrer-Policy and framing; nosniff on every response."""

from __future__ import annotations

import httpx

from tests.security.helpers import TINY, Keyed

PAGES = (
    "/", "/t/0123456789abcdef?token=x", "/dashboard", "/embed/0123456789abcdef?token=x", "/examples/embed.html", "/docs"
)


async def test_pages_carry_a_strict_csp_and_no_referrer(keyed: Keyed) -> None:
    async with httpx.AsyncClient(base_url=keyed.server.base_url) as http:
        for path in PAGES:
            page = await http.get(path)
            assert page.status_code == 200, path
            csp = {d.split()[0]: d.split()[1:] for d in page.headers["content-security-policy"].split("; ")}
            assert csp["default-src"] == ["'none'"] and csp["script-src"] == ["'self'"], path
            assert csp["style-src"] == ["'self'"] and csp["base-uri"] == ["'none'"], path
            assert csp["frame-ancestors"] == ["'self'"], path  # no --cors-origin: this server's pages only
            assert page.headers["referrer-policy"] == "no-referrer"
            assert page.headers["x-content-type-options"] == "nosniff"


async def test_every_response_says_nosniff(keyed: Keyed) -> None:
    async with httpx.AsyncClient(base_url=keyed.server.base_url) as http:
        answers = [
            await http.get("/healthz"),
            await http.get("/v1/models"),
            await http.get("/metrics"),
            await http.get("/static/embed.js"),
            await http.get("/v1/tasks"),  # 401
            await http.post("/v1/tasks", json={**TINY, "width": 1}, headers={"x-api-key": keyed.alice["key"]}),  # 422
            await http.get("/nowhere"),  # 404
        ]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff", answer.request.url
        assert answer.headers.get_list("x-content-type-options") == ["nosniff"]  # once, though pages set it too
